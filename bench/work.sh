# bench/work.sh: the scratch directory and daemon cleanup that ab.sh and ab-attribute.sh share,
# sourced by both. `work_begin DIR PREFIX` makes $work under DIR and, on exit or INT/TERM,
# stops the daemon whose pid the caller keeps in $dpid and removes $work.
work_stop() {
	if [ -n "$dpid" ]; then
		kill -TERM "$dpid" 2>/dev/null || true
		wait "$dpid" 2>/dev/null || true
	fi
	rm -rf "$work"
}

work_begin() { # dir prefix
	work=$(mktemp -d "$1/$2.XXXXXX")
	dpid=
	trap work_stop EXIT
	trap 'exit 130' INT TERM
}
