/*
 * Time and duration parsing and formatting for the CLI, without the C library's
 * locale- and timezone-dependent functions.
 */
#include <stdio.h>
#include <string.h>

#include "timefmt.h"

#define TF_US_PER_S 1000000LL

int64_t
tf_days_from_civil(int y, unsigned m, unsigned d)
{
	/* Shift the year to start in March so that the leap day is the year's last. */
	int64_t yy = (int64_t)y - (m <= 2);
	int64_t era = (yy >= 0 ? yy : yy - 399) / 400;
	int64_t yoe = yy - era * 400;
	int64_t doy = (153 * (int64_t)(m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
	int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;

	return era * 146097 + doe - 719468;
}

static int
tf_leap(int y)
{
	return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

/* Reads exactly n digits; returns the value or -1. */
static int
tf_digits(const char **p, int n)
{
	int v = 0, i;

	for (i = 0; i < n; i++) {
		if ((*p)[i] < '0' || (*p)[i] > '9')
			return -1;
		v = v * 10 + ((*p)[i] - '0');
	}
	*p += n;
	return v;
}

static int
tf_parse_date(const char **p, int64_t *days)
{
	static const int mdays[] = { 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31 };
	int y, m, d;

	if ((y = tf_digits(p, 4)) < 0 || *(*p)++ != '-' || (m = tf_digits(p, 2)) < 0 ||
	    *(*p)++ != '-' || (d = tf_digits(p, 2)) < 0)
		return -1;
	/* Any year reads: the range is checked on the whole time, zone applied. */
	if (m < 1 || m > 12 || d < 1 || d > mdays[m - 1] + (m == 2 && tf_leap(y)))
		return -1;
	*days = tf_days_from_civil(y, (unsigned)m, (unsigned)d);
	return 0;
}

/* SPEC §2's years, 1970-2200 in UTC. */
static int
tf_in_range(int64_t v, int64_t *us)
{
	if (v < 0 || v >= tf_days_from_civil(2201, 1, 1) * 86400 * TF_US_PER_S)
		return TF_OUT_OF_RANGE;
	*us = v;
	return 0;
}

int
tf_parse_time(const char *s, int64_t *us)
{
	const char *p = s;
	int64_t days, v = 0, frac = 0, scale = 100000, off = 0;
	int hh, mm, ss, oh, om, sign;

	if (s == NULL || *s == '\0')
		return -1;
	if (*p == '@') {
		p++;
		if (*p == '\0')
			return -1;
		if (p[strspn(p, "0123456789")] != '\0')
			return -1;
		for (; *p != '\0'; p++) {
			if (v > (INT64_MAX - 9) / 10)
				return TF_OUT_OF_RANGE;
			v = v * 10 + (*p - '0');
		}
		return tf_in_range(v, us);
	}
	if (tf_parse_date(&p, &days) != 0)
		return -1;
	if (*p == '\0')
		return tf_in_range(days * 86400 * TF_US_PER_S, us);
	if (*p != 'T' && *p != 't' && *p != ' ')
		return -1;
	p++;
	if ((hh = tf_digits(&p, 2)) < 0 || *p++ != ':' || (mm = tf_digits(&p, 2)) < 0 ||
	    *p++ != ':' || (ss = tf_digits(&p, 2)) < 0)
		return -1;
	/* 60 is a leap second: counted as :59.999999 would be wrong too; reject it. */
	if (hh > 23 || mm > 59 || ss > 59)
		return -1;
	if (*p == '.') {
		p++;
		if (*p < '0' || *p > '9')
			return -1;
		/* Digits beyond microseconds are truncated. */
		for (; *p >= '0' && *p <= '9'; p++, scale /= 10)
			frac += (*p - '0') * scale;
	}
	if (*p == 'Z' || *p == 'z') {
		p++;
	} else if (*p == '+' || *p == '-') {
		sign = *p++ == '-' ? -1 : 1;
		if ((oh = tf_digits(&p, 2)) < 0 || *p++ != ':' || (om = tf_digits(&p, 2)) < 0 ||
		    oh > 23 || om > 59)
			return -1;
		off = sign * (oh * 3600 + om * 60);
	} else {
		return -1;
	}
	if (*p != '\0')
		return -1;
	v = ((days * 86400 + hh * 3600 + mm * 60 + ss) - off) * TF_US_PER_S + frac;
	return tf_in_range(v, us);
}

int
tf_parse_duration(const char *s, int64_t *secs)
{
	const char *p = s;
	int64_t total = 0, n, unit;

	if (s == NULL || *s == '\0')
		return -1;
	while (*p != '\0') {
		const char *g = p;

		if (*p < '0' || *p > '9')
			return -1;
		for (n = 0; *p >= '0' && *p <= '9'; p++) {
			if (n > 1000000000000LL)
				return -1;
			n = n * 10 + (*p - '0');
		}
		switch (*p) {
		case '\0':
			/* A bare number is seconds, but only on its own ("1d5" is a typo). */
			if (g != s)
				return -1;
			unit = 1;
			break;
		case 's':
			unit = 1;
			p++;
			break;
		case 'm':
			unit = 60;
			p++;
			break;
		case 'h':
			unit = 3600;
			p++;
			break;
		case 'd':
			unit = 86400;
			p++;
			break;
		default:
			return -1;
		}
		total += n * unit;
		if (total > 1000000000000LL)
			return -1;
	}
	*secs = total;
	return 0;
}

void
tf_format(int64_t us, char *buf, size_t len)
{
	int64_t secs = us / TF_US_PER_S, frac = us % TF_US_PER_S, days, sod, z, era, doe, yoe, doy,
	        mp, y;
	unsigned m, d;

	if (frac < 0) {
		frac += TF_US_PER_S;
		secs--;
	}
	days = secs / 86400;
	sod = secs % 86400;
	if (sod < 0) {
		sod += 86400;
		days--;
	}
	/* The inverse of tf_days_from_civil. */
	z = days + 719468;
	era = (z >= 0 ? z : z - 146096) / 146097;
	doe = z - era * 146097;
	yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
	y = yoe + era * 400;
	doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
	mp = (5 * doy + 2) / 153;
	d = (unsigned)(doy - (153 * mp + 2) / 5 + 1);
	m = (unsigned)(mp < 10 ? mp + 3 : mp - 9);
	y += m <= 2;
	if (frac != 0)
		snprintf(buf, len, "%04lld-%02u-%02uT%02d:%02d:%02d.%06lldZ", (long long)y, m, d,
		         (int)(sod / 3600), (int)(sod / 60 % 60), (int)(sod % 60), (long long)frac);
	else
		snprintf(buf, len, "%04lld-%02u-%02uT%02d:%02d:%02dZ", (long long)y, m, d,
		         (int)(sod / 3600), (int)(sod / 60 % 60), (int)(sod % 60));
}
