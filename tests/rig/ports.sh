# Port numbers of the rig; sourced by start_servers.sh and stop_servers.sh. tests/rigutil.py
# (PORT_OFFSETS, rig_run_dir) computes the same defaults, so keep both in step. Every port can
# be moved with its own variable, or all at once with RIG_PORT_BASE (default 18100). All
# listeners bind to 127.0.0.1.
RIG_PORT_BASE=${RIG_PORT_BASE:-18100}
RIG_PORT_STATIC=${RIG_PORT_STATIC:-$((RIG_PORT_BASE + 1))}        # plain files
RIG_PORT_REFERER=${RIG_PORT_REFERER:-$((RIG_PORT_BASE + 2))}      # 403 without the viewer's Referer
RIG_PORT_FLAKY=${RIG_PORT_FLAKY:-$((RIG_PORT_BASE + 3))}          # random 503 / 429 / dropped tiles
RIG_PORT_RATELIMIT=${RIG_PORT_RATELIMIT:-$((RIG_PORT_BASE + 4))}  # limit_req -> 429, limit_conn -> 503
RIG_PORT_HOLES=${RIG_PORT_HOLES:-$((RIG_PORT_BASE + 5))}          # a fixed set of tiles always 404
RIG_PORT_HEADERS=${RIG_PORT_HEADERS:-$((RIG_PORT_BASE + 6))}      # 403 without cookie + browser UA
RIG_PORT_IIP=${RIG_PORT_IIP:-$((RIG_PORT_BASE + 7))}              # nginx -> iipsrv FastCGI
RIG_PORT_IIPSRV=${RIG_PORT_IIPSRV:-$((RIG_PORT_BASE + 8))}        # iipsrv's own FastCGI socket
RIG_PORT_AUTH=${RIG_PORT_AUTH:-$((RIG_PORT_BASE + 9))}            # 401 without Basic auth (RIG_AUTH_USER/PASSWORD)
RIG_PORT_REDIRECT=${RIG_PORT_REDIRECT:-$((RIG_PORT_BASE + 10))}   # /r/.. 301, /r2/.. 302 -> /r/, /x/.. 302 -> static port
RIG_PORT_SLOW=${RIG_PORT_SLOW:-$((RIG_PORT_BASE + 11))}           # requests queued (limit_req, no nodelay) + limit_rate
RIG_PORT_STRICT=${RIG_PORT_STRICT:-$((RIG_PORT_BASE + 12))}       # RIG_STRICT_RATE r/s, no burst -> 429 + Retry-After: 1
RIG_PORT_ONCE=${RIG_PORT_ONCE:-$((RIG_PORT_BASE + 13))}            # seeded chaos: a fixed set of tiles fails once each
# Runtime folder (configs, pids, logs): tests/rig/run for the default ports, tests/rig/run/port-<base>
# for another RIG_PORT_BASE, so two rigs on different ports never share pid files or logs.
if [ "$RIG_PORT_BASE" = 18100 ]; then RIG_RUN_DIR=${RIG_RUN_DIR:-$(dirname "${BASH_SOURCE[0]}")/run}
else RIG_RUN_DIR=${RIG_RUN_DIR:-$(dirname "${BASH_SOURCE[0]}")/run/port-$RIG_PORT_BASE}; fi
