# Port numbers of the rig; sourced by start_servers.sh. tests/conftest.py computes the same
# defaults, so keep both in step. Every port can be moved with its own variable, or all at
# once with RIG_PORT_BASE (default 18100). All listeners bind to 127.0.0.1.
RIG_PORT_BASE=${RIG_PORT_BASE:-18100}
RIG_PORT_STATIC=${RIG_PORT_STATIC:-$((RIG_PORT_BASE + 1))}        # plain files
RIG_PORT_REFERER=${RIG_PORT_REFERER:-$((RIG_PORT_BASE + 2))}      # 403 without the viewer's Referer
RIG_PORT_FLAKY=${RIG_PORT_FLAKY:-$((RIG_PORT_BASE + 3))}          # random 503 / 429 / dropped tiles
RIG_PORT_RATELIMIT=${RIG_PORT_RATELIMIT:-$((RIG_PORT_BASE + 4))}  # limit_req -> 429, limit_conn -> 503
RIG_PORT_HOLES=${RIG_PORT_HOLES:-$((RIG_PORT_BASE + 5))}          # a fixed set of tiles always 404
RIG_PORT_HEADERS=${RIG_PORT_HEADERS:-$((RIG_PORT_BASE + 6))}      # 403 without cookie + browser UA
RIG_PORT_IIP=${RIG_PORT_IIP:-$((RIG_PORT_BASE + 7))}              # nginx -> iipsrv FastCGI
RIG_PORT_IIPSRV=${RIG_PORT_IIPSRV:-$((RIG_PORT_BASE + 8))}        # iipsrv's own FastCGI socket
