/*
 * tpgen: the synthetic event stream of touchpoint's tests and benchmarks (the one model;
 * bench/gen.py is its front end). Deterministic for a seed; events come out in time order.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define GEN_US_PER_S   1000000LL
#define GEN_US_PER_DAY (86400LL * GEN_US_PER_S)
#define GEN_MAX_CHAN   12
#define GEN_MAX_CAMP   4
#define GEN_MAX_PATH   40
#define GEN_MAX_CONV   3
#define GEN_LINE       1024

/*
 * Channels with their reach (how often they touch anybody), where in a journey they tend
 * to appear (early = awareness, late = closing) and their pull towards converting: the
 * models disagree exactly because openers and closers differ.
 */
struct gen_channel {
	const char *name;
	int paid;
	int repeats; /* email and direct come back again and again */
	double reach, early, late, propensity;
	double impression_share; /* share of touches that are impressions */
	double cpc;              /* median cost of a paid click, EUR */
	double cpm;              /* cost per 1000 impressions, EUR */
	const char *campaigns[GEN_MAX_CAMP];
	const char *sources[3];
	const char *medium;
	const char *interaction; /* the non-impression interaction */
};

/* name, paid, repeats, reach, early, late, propensity, impression share, cpc, cpm, ... */
/* clang-format off */
static const struct gen_channel gen_channels[GEN_MAX_CHAN] = {
	{ "paid_search",    1, 0, 0.30, 0.7, 1.3, 1.6, 0.0, 0.85, 0,
	  { "brand", "generic", "competitor" }, { "google", "bing" }, "cpc", "click" },
	{ "organic_search", 0, 0, 0.35, 1.0, 1.0, 1.3, 0.0, 0, 0,
	  { 0 }, { "google", "bing", "duckduckgo" }, "organic", "visit" },
	{ "social_paid",    1, 0, 0.25, 1.5, 0.6, 0.6, 0.6, 0.55, 4.5,
	  { "prospecting", "retargeting", "lookalike", "stories" },
	  { "facebook", "instagram", "tiktok" }, "paid_social", "click" },
	{ "social_organic", 0, 0, 0.15, 1.3, 0.7, 0.4, 0.0, 0, 0,
	  { 0 }, { "facebook", "instagram", "linkedin" }, "social", "visit" },
	{ "email",          0, 1, 0.30, 0.6, 1.4, 1.2, 0.0, 0, 0,
	  { "newsletter", "welcome", "cart_recovery", "winback" }, { "newsletter" }, "email",
	  "email_open" },
	{ "display",        1, 0, 0.25, 1.6, 0.5, 0.3, 0.8, 0.40, 2.5,
	  { "awareness", "retargeting" }, { "dv360", "criteo" }, "display", "click" },
	{ "affiliate",      1, 0, 0.08, 0.5, 1.6, 1.5, 0.0, 0.30, 0,
	  { "cashback", "vouchers" }, { "awin", "tradedoubler" }, "affiliate", "click" },
	{ "direct",         0, 1, 0.40, 0.5, 1.5, 1.4, 0.0, 0, 0,
	  { 0 }, { "(direct)" }, "(none)", "visit" },
	{ "referral",       0, 0, 0.06, 1.1, 0.9, 1.0, 0.0, 0, 0,
	  { 0 }, { "techblog.example", "forum.example", "news.example" }, "referral", "visit" },
	{ "video",          1, 0, 0.10, 1.7, 0.4, 0.4, 0.7, 0.70, 6.0,
	  { "preroll", "ctv" }, { "youtube" }, "video", "click" },
	{ "podcast",        1, 0, 0.04, 1.5, 0.6, 0.5, 0.0, 0.60, 0,
	  { "host_read", "programmatic" }, { "spotify", "apple" }, "audio", "visit" },
	{ "sms",            0, 1, 0.05, 0.4, 1.5, 1.1, 0.0, 0, 0,
	  { "promo", "cart_recovery" }, { "twilio" }, "sms", "click" },
};
/* clang-format on */

static const char *const gen_countries[] = { "DE", "FR", "NL", "ES", "IT",
	                                     "AT", "BE", "PL", "SE", "GB" };
static const double gen_country_w[] = { 30, 18, 10, 10, 9, 5, 5, 5, 4, 4 };

/* Share of the day's arrivals per UTC hour: quiet nights, a lunch bump, busy evenings. */
static const double gen_hour_w[24] = { 1.0, 0.6, 0.4, 0.3, 0.3, 0.5, 1.2, 2.4, 3.4, 4.0, 4.2, 4.4,
	                               4.8, 4.6, 4.3, 4.2, 4.3, 4.7, 5.4, 6.0, 6.2, 5.4, 3.8, 2.0 };
/* Monday .. Sunday. */
static const double gen_weekday_w[7] = { 1.05, 1.0, 1.0, 1.02, 0.98, 0.85, 0.95 };

enum gen_next { GEN_TOUCH, GEN_ALIAS, GEN_IDENTIFY, GEN_CONVERSION };

struct gen_customer {
	uint64_t rng;
	int64_t t;
	uint64_t idx;
	double intent;
	uint32_t nev;   /* events emitted: the per-customer event id counter */
	uint16_t ti;    /* touch index within the current cycle */
	uint16_t len;   /* planned touches of the current cycle */
	uint16_t total; /* touches in all cycles */
	uint16_t id_at; /* identify after this many touches (0: never) */
	uint8_t next, conv_pending, nconv, anon, identified, prev_chan, fav[2];
	struct gen_customer *free_next;
};

struct gen_heap_ent {
	int64_t t;
	uint64_t idx; /* ties: customer order, for a stable output */
	struct gen_customer *c;
};

struct gen {
	/* options */
	uint64_t customers, max_events, seed;
	int days, nchan, ndjson, ts_us;
	int64_t start_us;
	/* state */
	FILE *out;
	uint64_t emitted;
	struct gen_heap_ent *heap;
	size_t nheap, capheap;
	struct gen_customer *pool;
	double chan_w_early[GEN_MAX_CHAN], chan_w_late[GEN_MAX_CHAN];
	double spend_clicks[GEN_MAX_CHAN][GEN_MAX_CAMP];
	uint64_t spend_impr[GEN_MAX_CHAN][GEN_MAX_CAMP];
	int spend_day; /* index of the day whose spend accumulates */
	int64_t day_cached;
	char day_str[32];
	char line[GEN_LINE];
	size_t len;
};

/* splitmix64: tiny state (one word per customer) and good enough statistics. */
static uint64_t
gen_next64(uint64_t *s)
{
	uint64_t z = (*s += 0x9e3779b97f4a7c15ULL);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

/* A bijection of 64-bit words: distinct indexes give distinct ids. */
static uint64_t
gen_mix(uint64_t z)
{
	z = (z ^ (z >> 33)) * 0xff51afd7ed558ccdULL;
	z = (z ^ (z >> 33)) * 0xc4ceb9fe1a85ec53ULL;
	return z ^ (z >> 33);
}

static double
gen_unif(uint64_t *s)
{
	return (double)(gen_next64(s) >> 11) * (1.0 / 9007199254740992.0);
}

static double
gen_normal(uint64_t *s)
{
	double u = gen_unif(s), v = gen_unif(s);

	if (u < 1e-300)
		u = 1e-300;
	return sqrt(-2.0 * log(u)) * cos(6.283185307179586 * v);
}

static double
gen_lognormal(uint64_t *s, double median, double sigma)
{
	return median * exp(sigma * gen_normal(s));
}

static int
gen_pick(uint64_t *s, const double *w, int n)
{
	double tot = 0, r;
	int i;

	for (i = 0; i < n; i++)
		tot += w[i];
	r = gen_unif(s) * tot;
	for (i = 0; i < n - 1; i++) {
		if (r < w[i])
			return i;
		r -= w[i];
	}
	return n - 1;
}

static int
gen_ncamp(int ch)
{
	int n = 0;

	while (n < GEN_MAX_CAMP && gen_channels[ch].campaigns[n] != NULL)
		n++;
	return n;
}

/* Days since 1970-01-01 from a civil date, by counting: called once per run. */
static int64_t
gen_days_from_civil(int y, int m, int d)
{
	static const int mdays[12] = { 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31 };
	int64_t days = 0;
	int i;

	for (i = 1970; i < y; i++)
		days += 365 + ((i % 4 == 0 && i % 100 != 0) || i % 400 == 0);
	for (i = 1; i < m; i++)
		days += mdays[i - 1] + (i == 2 && ((y % 4 == 0 && y % 100 != 0) || y % 400 == 0));
	return days + d - 1;
}

static void
gen_civil_from_days(int64_t days, int *y, int *m, int *d)
{
	static const int mdays[12] = { 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31 };
	int yy = 1970, mm = 0, leap, len;

	for (;;) {
		leap = (yy % 4 == 0 && yy % 100 != 0) || yy % 400 == 0;
		if (days < 365 + leap)
			break;
		days -= 365 + leap;
		yy++;
	}
	for (;;) {
		len = mdays[mm] + (mm == 1 && leap);
		if (days < len)
			break;
		days -= len;
		mm++;
	}
	*y = yy;
	*m = mm + 1;
	*d = (int)days + 1;
}

/* Output: one line assembled in g->line, bounded by GEN_LINE (every field is short). */
static void
gen_put(struct gen *g, const char *s)
{
	size_t n = strlen(s);

	if (g->len + n >= GEN_LINE)
		n = GEN_LINE - 1 - g->len;
	memcpy(g->line + g->len, s, n);
	g->len += n;
}

static void
gen_putc(struct gen *g, char c)
{
	if (g->len + 1 < GEN_LINE)
		g->line[g->len++] = c;
}

static void
gen_put_u(struct gen *g, uint64_t v, int width)
{
	char tmp[24];
	int n = 0;

	do {
		tmp[n++] = (char)('0' + v % 10);
		v /= 10;
	} while (v != 0 || n < width);
	while (n > 0)
		gen_putc(g, tmp[--n]);
}

/* Money: two decimals, rounded. */
static void
gen_put_money(struct gen *g, double v)
{
	uint64_t cents = (uint64_t)(v * 100.0 + 0.5);

	gen_put_u(g, cents / 100, 1);
	gen_putc(g, '.');
	gen_put_u(g, cents % 100, 2);
}

static void
gen_day_string(struct gen *g, int64_t day)
{
	int y, m, d;

	if (day == g->day_cached)
		return;
	gen_civil_from_days(day, &y, &m, &d);
	snprintf(g->day_str, sizeof(g->day_str), "%04d-%02d-%02d", y % 10000, m % 100, d % 100);
	g->day_cached = day;
}

static void
gen_put_time(struct gen *g, int64_t t)
{
	int64_t day = t / GEN_US_PER_DAY, us = t % GEN_US_PER_DAY;

	if (g->ts_us) {
		gen_put_u(g, (uint64_t)t, 1);
		return;
	}
	gen_day_string(g, day);
	gen_put(g, g->day_str);
	gen_putc(g, 'T');
	gen_put_u(g, (uint64_t)(us / (3600 * GEN_US_PER_S)), 2);
	gen_putc(g, ':');
	gen_put_u(g, (uint64_t)(us / (60 * GEN_US_PER_S) % 60), 2);
	gen_putc(g, ':');
	gen_put_u(g, (uint64_t)(us / GEN_US_PER_S % 60), 2);
	gen_putc(g, '.');
	gen_put_u(g, (uint64_t)(us % GEN_US_PER_S), 6);
	gen_putc(g, 'Z');
}

/*
 * The fields of one event. In CSV every column is written (empty when absent); in NDJSON
 * only the present ones. No value generated here needs quoting or escaping.
 */
struct gen_event {
	const char *type, *customer, *channel, *campaign, *source, *medium, *interaction;
	const char *currency, *name, *previous, *plan, *country;
	int64_t t;
	int has_cost, has_value, has_amount;
	double cost, value, amount;
	int64_t day; /* spend: day index since the epoch, else -1 */
	char id[64];
};

static const char gen_header[] =
    "channel,campaign,source,medium,interaction,cost,value,currency,name,previous_id,day,"
    "amount,trait.plan,trait.country\n";

static void
gen_json_str(struct gen *g, const char *key, const char *v, int *first)
{
	if (v == NULL || *v == '\0')
		return;
	if (!*first)
		gen_putc(g, ',');
	*first = 0;
	gen_putc(g, '"');
	gen_put(g, key);
	gen_put(g, "\":\"");
	gen_put(g, v);
	gen_putc(g, '"');
}

static void
gen_json_money(struct gen *g, const char *key, int has, double v, int *first)
{
	if (!has)
		return;
	if (!*first)
		gen_putc(g, ',');
	*first = 0;
	gen_putc(g, '"');
	gen_put(g, key);
	gen_put(g, "\":");
	gen_put_money(g, v);
}

static int
gen_emit(struct gen *g, const struct gen_event *e)
{
	int first = 1;

	g->len = 0;
	if (!g->ndjson) {
		gen_put(g, e->id);
		gen_putc(g, ',');
		gen_put(g, e->customer ? e->customer : "");
		gen_putc(g, ',');
		gen_put(g, e->type);
		gen_putc(g, ',');
		gen_put_time(g, e->t);
#define GEN_COL(v)                                                                                 \
	do {                                                                                       \
		gen_putc(g, ',');                                                                  \
		if ((v) != NULL)                                                                   \
			gen_put(g, (v));                                                           \
	} while (0)
		GEN_COL(e->channel);
		GEN_COL(e->campaign);
		GEN_COL(e->source);
		GEN_COL(e->medium);
		GEN_COL(e->interaction);
		gen_putc(g, ',');
		if (e->has_cost)
			gen_put_money(g, e->cost);
		gen_putc(g, ',');
		if (e->has_value)
			gen_put_money(g, e->value);
		GEN_COL(e->currency);
		GEN_COL(e->name);
		GEN_COL(e->previous);
		gen_putc(g, ',');
		if (e->day >= 0) {
			gen_day_string(g, e->day);
			gen_put(g, g->day_str);
		}
		gen_putc(g, ',');
		if (e->has_amount)
			gen_put_money(g, e->amount);
		GEN_COL(e->plan);
		GEN_COL(e->country);
#undef GEN_COL
	} else {
		gen_putc(g, '{');
		gen_json_str(g, "event_id", e->id, &first);
		gen_json_str(g, "customer_id", e->customer, &first);
		gen_json_str(g, "type", e->type, &first);
		gen_put(g, g->ts_us ? ",\"timestamp_us\":" : ",\"timestamp\":\"");
		gen_put_time(g, e->t);
		if (!g->ts_us)
			gen_putc(g, '"');
		gen_json_str(g, "channel", e->channel, &first);
		gen_json_str(g, "campaign", e->campaign, &first);
		gen_json_str(g, "source", e->source, &first);
		gen_json_str(g, "medium", e->medium, &first);
		gen_json_str(g, "interaction", e->interaction, &first);
		gen_json_money(g, "cost", e->has_cost, e->cost, &first);
		gen_json_money(g, "value", e->has_value, e->value, &first);
		gen_json_str(g, "currency", e->currency, &first);
		gen_json_str(g, "name", e->name, &first);
		gen_json_str(g, "previous_id", e->previous, &first);
		if (e->day >= 0) {
			gen_day_string(g, e->day);
			gen_json_str(g, "day", g->day_str, &first);
		}
		gen_json_money(g, "amount", e->has_amount, e->amount, &first);
		if (e->plan != NULL) {
			gen_put(g, ",\"traits\":{\"plan\":\"");
			gen_put(g, e->plan);
			gen_put(g, "\",\"country\":\"");
			gen_put(g, e->country);
			gen_put(g, "\"}");
		}
		gen_putc(g, '}');
	}
	gen_putc(g, '\n');
	if (fwrite(g->line, 1, g->len, g->out) != g->len)
		return -1;
	g->emitted++;
	return 0;
}

static void
gen_event_init(struct gen_event *e, const char *type, int64_t t)
{
	memset(e, 0, sizeof(*e));
	e->type = type;
	e->t = t;
	e->day = -1;
}

/* Spend of one day per paid channel and campaign: what its clicks and impressions cost. */
static int
gen_flush_spend(struct gen *g)
{
	int64_t day = g->start_us / GEN_US_PER_DAY + g->spend_day;
	struct gen_event e;
	int ch, k;

	for (ch = 0; ch < g->nchan; ch++) {
		if (!gen_channels[ch].paid)
			continue;
		for (k = 0; k < gen_ncamp(ch); k++) {
			if (g->max_events != 0 && g->emitted >= g->max_events)
				break; /* --events is exact, even in the middle of a day's spend */
			gen_event_init(&e, "spend", (day + 1) * GEN_US_PER_DAY - 1);
			snprintf(e.id, sizeof(e.id), "g%" PRIu64 "-s%" PRId64 "-%d-%d", g->seed,
			         day, ch, k);
			e.channel = gen_channels[ch].name;
			e.campaign = gen_channels[ch].campaigns[k];
			e.day = day;
			e.has_amount = 1;
			e.amount = g->spend_clicks[ch][k] +
			           (double)g->spend_impr[ch][k] * gen_channels[ch].cpm / 1000.0;
			e.currency = "EUR";
			if (gen_emit(g, &e) != 0)
				return -1;
			g->spend_clicks[ch][k] = 0;
			g->spend_impr[ch][k] = 0;
		}
	}
	g->spend_day++;
	return 0;
}

static void
gen_heap_push(struct gen *g, struct gen_customer *c)
{
	struct gen_heap_ent e = { c->t, c->idx, c };
	size_t i = g->nheap++, p;

	while (i > 0) {
		p = (i - 1) / 2;
		if (g->heap[p].t < e.t || (g->heap[p].t == e.t && g->heap[p].idx < e.idx))
			break;
		g->heap[i] = g->heap[p];
		i = p;
	}
	g->heap[i] = e;
}

static int
gen_heap_less(const struct gen_heap_ent *a, const struct gen_heap_ent *b)
{
	return a->t < b->t || (a->t == b->t && a->idx < b->idx);
}

static void
gen_heap_pop(struct gen *g)
{
	struct gen_heap_ent last = g->heap[--g->nheap];
	size_t i = 0, c;

	for (;;) {
		c = 2 * i + 1;
		if (c >= g->nheap)
			break;
		if (c + 1 < g->nheap && gen_heap_less(&g->heap[c + 1], &g->heap[c]))
			c++;
		if (!gen_heap_less(&g->heap[c], &last))
			break;
		g->heap[i] = g->heap[c];
		i = c;
	}
	if (g->nheap > 0)
		g->heap[i] = last;
}

/* Long-tailed: median 2 touches, mean about 3, rarely up to 40. */
static uint16_t
gen_path_len(uint64_t *s, int repeat)
{
	double l = 1.0 + floor(gen_lognormal(s, repeat ? 1.0 : 1.5, 1.1));

	return (uint16_t)(l > GEN_MAX_PATH ? GEN_MAX_PATH : l);
}

/* Nights are quiet: most activity that would fall before 06:00 waits for the morning. */
static int64_t
gen_diurnal(uint64_t *s, int64_t t)
{
	int64_t hour = t % GEN_US_PER_DAY / (3600 * GEN_US_PER_S);

	if (hour < 6 && gen_unif(s) < 0.75)
		t = t - t % GEN_US_PER_DAY + 7 * 3600 * GEN_US_PER_S +
		    (int64_t)(gen_unif(s) * 3 * 3600 * GEN_US_PER_S);
	return t;
}

static int64_t
gen_gap(uint64_t *s, double median_s, double sigma, double min_s, double max_s)
{
	double v = gen_lognormal(s, median_s, sigma);

	if (v < min_s)
		v = min_s;
	if (v > max_s)
		v = max_s;
	return (int64_t)(v * GEN_US_PER_S) + (int64_t)(gen_unif(s) * GEN_US_PER_S);
}

static void
gen_customer_init(struct gen *g, struct gen_customer *c, uint64_t idx, int64_t t)
{
	double u;

	memset(c, 0, sizeof(*c));
	c->idx = idx;
	c->rng = gen_mix(g->seed * 0x9e3779b97f4a7c15ULL + idx + 1);
	c->t = t;
	c->intent = gen_lognormal(&c->rng, 1.0, 0.8) / exp(0.32);
	c->len = gen_path_len(&c->rng, 0);
	c->fav[0] = (uint8_t)gen_pick(&c->rng, g->chan_w_early, g->nchan);
	c->fav[1] = (uint8_t)gen_pick(&c->rng, g->chan_w_late, g->nchan);
	c->prev_chan = 0xff;
	u = gen_unif(&c->rng);
	if (u < 0.60) {
		/* Identified after one of the first touches; 1 in 12 of them (5 % of all)
		 * browsed anonymously until then and are joined by an alias. */
		c->id_at = (uint16_t)(1 + gen_unif(&c->rng) * (c->len < 3 ? c->len : 3));
		c->anon = u < 0.05;
	}
	c->next = GEN_TOUCH;
}

static int
gen_pick_channel(struct gen *g, struct gen_customer *c)
{
	double w[GEN_MAX_CHAN], stage = c->len > 1 ? (double)c->ti / (c->len - 1) : 1.0;
	int i;

	if (c->prev_chan != 0xff && gen_channels[c->prev_chan].repeats && gen_unif(&c->rng) < 0.45)
		return c->prev_chan;
	if (gen_unif(&c->rng) < 0.45)
		return c->fav[gen_unif(&c->rng) < 0.5 ? 0 : 1];
	for (i = 0; i < g->nchan; i++)
		w[i] = g->chan_w_early[i] * (1 - stage) + g->chan_w_late[i] * stage;
	return gen_pick(&c->rng, w, g->nchan);
}

static void
gen_customer_ids(const struct gen *g, const struct gen_customer *c, char *cust, char *anon)
{
	snprintf(cust, 32, "cust-%016" PRIx64, gen_mix(c->idx ^ (g->seed << 40)));
	snprintf(anon, 32, "anon-%016" PRIx64, gen_mix(~c->idx ^ (g->seed << 40)));
}

/* Emits the customer's next event and schedules the one after; 1 when the journey ends. */
static int
gen_step(struct gen *g, struct gen_customer *c, int *done)
{
	const struct gen_channel *ch;
	struct gen_event e;
	char cust[32], anon[32];
	int chi, k, camp, conv_now;
	double h;

	*done = 0;
	gen_customer_ids(g, c, cust, anon);
	switch (c->next) {
	case GEN_TOUCH:
		chi = gen_pick_channel(g, c);
		ch = &gen_channels[chi];
		gen_event_init(&e, "touch", c->t);
		e.customer = c->anon && !c->identified ? anon : cust;
		e.channel = ch->name;
		k = gen_ncamp(chi);
		camp = 0;
		if (k > 0) {
			double cw[GEN_MAX_CAMP] = { 4, 2, 1.2, 0.8 };

			camp = gen_pick(&c->rng, cw, k);
			e.campaign = ch->campaigns[camp];
		}
		e.source = ch->sources[(int)(gen_unif(&c->rng) * 3) % 3];
		if (e.source == NULL)
			e.source = ch->sources[0];
		e.medium = ch->medium;
		if (gen_unif(&c->rng) < ch->impression_share) {
			e.interaction = "impression";
			if (ch->paid)
				g->spend_impr[chi][camp]++;
		} else {
			e.interaction = ch->interaction;
			if (chi == 4 && gen_unif(&c->rng) < 0.4)
				e.interaction = "click";
			if (ch->paid) {
				e.has_cost = 1;
				e.cost = ch->cpc > 0 ? gen_lognormal(&c->rng, ch->cpc, 0.5) : 0.0;
				g->spend_clicks[chi][camp] += floor(e.cost * 100 + 0.5) / 100;
			}
		}
		c->prev_chan = (uint8_t)chi;
		c->ti++;
		c->total++;
		/* The pull of this touch, growing as the journey matures; returning
		 * buyers convert more readily. */
		h = 0.0155 * ch->propensity * c->intent * (0.5 + 0.12 * (c->ti < 10 ? c->ti : 10)) *
		    (c->nconv > 0 ? 10.0 : 1.0);
		c->conv_pending = gen_unif(&c->rng) < h;
		if (!c->identified && c->id_at != 0 && (c->total >= c->id_at || c->conv_pending)) {
			c->next = c->anon ? GEN_ALIAS : GEN_IDENTIFY;
			c->t += gen_gap(&c->rng, 20, 1.0, 1, 600);
		} else if (c->conv_pending) {
			c->next = GEN_CONVERSION;
			c->t += gen_gap(&c->rng, 480, 1.2, 10, 2 * 86400);
		} else if (c->ti < c->len) {
			c->t = gen_diurnal(&c->rng,
			                   c->t + gen_gap(&c->rng, 3 * 3600, 2.0, 30, 20 * 86400));
		} else {
			*done = 1;
		}
		break;
	case GEN_ALIAS:
		gen_event_init(&e, "alias", c->t);
		e.customer = cust;
		e.previous = anon;
		c->next = GEN_IDENTIFY;
		c->t += gen_gap(&c->rng, 2, 0.5, 0, 30);
		break;
	case GEN_IDENTIFY: {
		static const double plan_w[3] = { 70, 25, 5 };
		static const char *const plans[3] = { "free", "pro", "enterprise" };

		gen_event_init(&e, "identify", c->t);
		e.customer = cust;
		e.plan = plans[gen_pick(&c->rng, plan_w, 3)];
		e.country = gen_countries[gen_pick(&c->rng, gen_country_w, 10)];
		c->identified = 1;
		if (c->conv_pending) {
			c->next = GEN_CONVERSION;
			c->t += gen_gap(&c->rng, 300, 1.2, 10, 86400);
		} else if (c->ti < c->len) {
			c->next = GEN_TOUCH;
			c->t = gen_diurnal(&c->rng,
			                   c->t + gen_gap(&c->rng, 3 * 3600, 2.0, 30, 20 * 86400));
		} else {
			*done = 1;
		}
		break;
	}
	case GEN_CONVERSION:
		gen_event_init(&e, "conversion", c->t);
		e.customer = cust;
		conv_now = c->nconv == 0 && gen_unif(&c->rng) < 0.15;
		e.name = conv_now ? "signup" : "purchase";
		e.has_value = 1;
		e.value = conv_now ? 0.0 : gen_lognormal(&c->rng, 55.0, 0.8);
		e.currency = conv_now ? NULL : "EUR";
		c->nconv++;
		c->conv_pending = 0;
		if (c->nconv < GEN_MAX_CONV && gen_unif(&c->rng) < 0.4) {
			/* A repeat buyer: a new, shorter journey some days later. */
			c->ti = 0;
			c->len = gen_path_len(&c->rng, 1);
			c->next = GEN_TOUCH;
			c->t = gen_diurnal(
			    &c->rng, c->t + gen_gap(&c->rng, 12 * 86400, 0.7, 86400, 60 * 86400));
		} else {
			*done = 1;
		}
		break;
	default:
		return -1;
	}
	snprintf(e.id, sizeof(e.id), "g%" PRIu64 "-%" PRIx64 "-%" PRIx32, g->seed, c->idx,
	         c->nev++);
	return gen_emit(g, &e);
}

static int
gen_cmp_i64(const void *a, const void *b)
{
	int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;

	return (x > y) - (x < y);
}

/* Arrivals of one day, sorted: the day's share follows the weekday, the hour the diurnal curve. */
static int
gen_day_arrivals(struct gen *g, uint64_t *rng, int day, uint64_t n, int64_t **out)
{
	int64_t base = g->start_us + (int64_t)day * GEN_US_PER_DAY, *a;
	uint64_t i;

	a = malloc((n ? n : 1) * sizeof(*a));
	if (a == NULL)
		return -1;
	for (i = 0; i < n; i++)
		a[i] = base + gen_pick(rng, gen_hour_w, 24) * 3600 * GEN_US_PER_S +
		       (int64_t)(gen_unif(rng) * 3600 * GEN_US_PER_S);
	qsort(a, n, sizeof(*a), gen_cmp_i64);
	*out = a;
	return 0;
}

static int
gen_run(struct gen *g)
{
	int64_t end = g->start_us + (int64_t)g->days * GEN_US_PER_DAY, *arr = NULL;
	uint64_t rng = gen_mix(g->seed ^ 0x5eed5eed5eedULL), idx = 0, nday, ai = 0, cum_prev = 0;
	double wtot = 0, wcum = 0;
	struct gen_customer *c;
	int day = -1, done, rv = -1, i;

	for (i = 0; i < g->days; i++)
		wtot += gen_weekday_w[(g->start_us / GEN_US_PER_DAY + i + 3) % 7];
	if (!g->ndjson && fprintf(g->out, "event_id,customer_id,type,%s,%s",
	                          g->ts_us ? "timestamp_us" : "timestamp", gen_header) < 0)
		return -1;
	nday = 0;
	for (;;) {
		int64_t next_arr;

		if (g->max_events != 0 && g->emitted >= g->max_events)
			break;
		/* The next arrival, day by day (customers split by weekday weight). */
		while (ai >= nday && day + 1 < g->days) {
			uint64_t cum;

			day++;
			wcum += gen_weekday_w[(g->start_us / GEN_US_PER_DAY + day + 3) % 7];
			cum = (uint64_t)((double)g->customers * wcum / wtot + 0.5);
			if (day == g->days - 1)
				cum = g->customers;
			nday = cum - cum_prev;
			cum_prev = cum;
			free(arr);
			arr = NULL;
			ai = 0;
			if (gen_day_arrivals(g, &rng, day, nday, &arr) != 0)
				goto fail;
		}
		next_arr = ai < nday ? arr[ai] : INT64_MAX;
		if (g->nheap == 0 && next_arr == INT64_MAX)
			break;
		if (g->nheap > 0 && g->heap[0].t <= next_arr) {
			c = g->heap[0].c;
			gen_heap_pop(g);
		} else {
			if (g->pool != NULL) {
				c = g->pool;
				g->pool = c->free_next;
			} else if ((c = malloc(sizeof(*c))) == NULL) {
				goto fail;
			}
			gen_customer_init(g, c, idx++, next_arr);
			ai++;
			if (g->nheap == g->capheap) {
				size_t cap = g->capheap ? 2 * g->capheap : 4096;
				struct gen_heap_ent *h = realloc(g->heap, cap * sizeof(*h));

				if (h == NULL) {
					c->free_next = g->pool;
					g->pool = c;
					goto fail;
				}
				g->heap = h;
				g->capheap = cap;
			}
		}
		/* Spend of every finished day goes out before the first event of the next. */
		while (g->spend_day < g->days &&
		       c->t >= g->start_us + (int64_t)(g->spend_day + 1) * GEN_US_PER_DAY)
			if (gen_flush_spend(g) != 0)
				goto fail;
		if (c->t >= end) {
			done = 1;
		} else if (gen_step(g, c, &done) != 0) {
			c->free_next = g->pool;
			g->pool = c;
			goto fail;
		}
		if (done) {
			c->free_next = g->pool;
			g->pool = c;
		} else {
			gen_heap_push(g, c);
		}
	}
	/* The spend of the remaining days, unless --events cut the stream short (the day
	 * in progress then has no spend: it is not over). */
	while (g->spend_day < g->days && (g->max_events == 0 || g->emitted < g->max_events))
		if (gen_flush_spend(g) != 0)
			goto fail;
	rv = 0;
fail:
	free(arr);
	return rv;
}

static void
gen_free(struct gen *g)
{
	struct gen_customer *c;
	size_t i;

	for (i = 0; i < g->nheap; i++)
		free(g->heap[i].c);
	free(g->heap);
	while ((c = g->pool) != NULL) {
		g->pool = c->free_next;
		free(c);
	}
}

static int
gen_parse_u64(const char *s, uint64_t *v)
{
	char *end;

	errno = 0;
	if (*s == '-' || *s == '\0')
		return -1;
	*v = strtoull(s, &end, 10);
	return errno != 0 || *end != '\0' ? -1 : 0;
}

static void
gen_usage(FILE *f)
{
	fputs("usage: tpgen [--customers N] [--events N] [--days D] [--start YYYY-MM-DD]\n"
	      "             [--seed S] [--channels K] [--format csv|ndjson] [--timestamp-us]\n"
	      "             [--out FILE|-]\n",
	      f);
}

int
main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "customers", required_argument, NULL, 'c' },
		{ "events", required_argument, NULL, 'n' },
		{ "days", required_argument, NULL, 'd' },
		{ "start", required_argument, NULL, 'b' },
		{ "seed", required_argument, NULL, 's' },
		{ "channels", required_argument, NULL, 'k' },
		{ "format", required_argument, NULL, 'f' },
		{ "timestamp-us", no_argument, NULL, 'u' },
		{ "out", required_argument, NULL, 'o' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	static char obuf[1 << 20];
	struct gen g;
	const char *out = "-";
	uint64_t v;
	int ch, y, m, d, have_customers = 0, rv = 1, i;
	char extra;

	memset(&g, 0, sizeof(g));
	g.customers = 10000;
	g.seed = 1;
	g.days = 30;
	g.nchan = 10;
	g.day_cached = -1;
	g.start_us = gen_days_from_civil(2024, 1, 1) * GEN_US_PER_DAY;
	while ((ch = getopt_long(argc, argv, "c:n:d:b:s:k:f:uo:h", opts, NULL)) != -1) {
		switch (ch) {
		case 'c':
			if (gen_parse_u64(optarg, &g.customers) != 0 || g.customers == 0)
				goto usage;
			have_customers = 1;
			break;
		case 'n':
			if (gen_parse_u64(optarg, &g.max_events) != 0 || g.max_events == 0)
				goto usage;
			break;
		case 'd':
			if (gen_parse_u64(optarg, &v) != 0 || v == 0 || v > 3650)
				goto usage;
			g.days = (int)v;
			break;
		case 'b':
			if (sscanf(optarg, "%4d-%2d-%2d%c", &y, &m, &d, &extra) != 3 || y < 1970 ||
			    y > 2199 || m < 1 || m > 12 || d < 1 || d > 31)
				goto usage;
			g.start_us = gen_days_from_civil(y, m, d) * GEN_US_PER_DAY;
			break;
		case 's':
			if (gen_parse_u64(optarg, &g.seed) != 0)
				goto usage;
			break;
		case 'k':
			if (gen_parse_u64(optarg, &v) != 0 || v < 8 || v > GEN_MAX_CHAN)
				goto usage;
			g.nchan = (int)v;
			break;
		case 'f':
			if (strcmp(optarg, "csv") == 0)
				g.ndjson = 0;
			else if (strcmp(optarg, "ndjson") == 0)
				g.ndjson = 1;
			else
				goto usage;
			break;
		case 'u':
			g.ts_us = 1;
			break;
		case 'o':
			out = optarg;
			break;
		case 'h':
			gen_usage(stdout);
			return 0;
		default:
			goto usage;
		}
	}
	if (optind != argc)
		goto usage;
	/* About 3.55 events per customer with these parameters over 30 days:
	 * ask for a few more customers than needed and stop at the count. */
	if (g.max_events != 0 && !have_customers)
		g.customers = (uint64_t)((double)g.max_events / 3.4) + 1;
	for (i = 0; i < g.nchan; i++) {
		g.chan_w_early[i] = gen_channels[i].reach * gen_channels[i].early;
		g.chan_w_late[i] = gen_channels[i].reach * gen_channels[i].late;
	}
	g.out = stdout;
	if (strcmp(out, "-") != 0 && (g.out = fopen(out, "w")) == NULL) {
		fprintf(stderr, "tpgen: %s: %s\n", out, strerror(errno));
		return 1;
	}
	setvbuf(g.out, obuf, _IOFBF, sizeof(obuf));
	if (gen_run(&g) != 0) {
		fprintf(stderr, "tpgen: %s\n", errno ? strerror(errno) : "out of memory");
		goto done;
	}
	if (fflush(g.out) != 0) {
		fprintf(stderr, "tpgen: write: %s\n", strerror(errno));
		goto done;
	}
	rv = 0;
done:
	if (g.out != stdout && fclose(g.out) != 0 && rv == 0) {
		fprintf(stderr, "tpgen: %s: %s\n", out, strerror(errno));
		rv = 1;
	}
	gen_free(&g);
	return rv;
usage:
	gen_usage(stderr);
	return 64;
}
