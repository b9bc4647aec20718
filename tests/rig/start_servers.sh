#!/usr/bin/env bash
# Start the loopback tile servers: one nginx master with twelve ports and one iipsrv.
#
#   static     root www/, autoindex, CORS *
#   referer    403 unless Referer starts with http://127.0.0.1:<port>/viewer.html (or
#              localhost); /viewer.html itself is always served
#   flaky      image files only: RIG_FLAKY_503 % -> 503, RIG_FLAKY_429 % -> 429 (both with
#              Retry-After: 1), RIG_FLAKY_444 % -> connection closed with no response;
#              drawn again for every request (split_clients on $request_id)
#   ratelimit  RIG_RATE r/s per client, burst RIG_BURST, nodelay -> 429 + Retry-After: 1;
#              more than RIG_CONNS open connections -> 503
#   holes      image files whose URI hashes into RIG_HOLES_PCT % always get 404 (the same
#              set on every run: split_clients on $uri); metadata always 200
#   headers    403 unless Cookie has session=s3cret and the User-Agent is non-empty and not
#              python* / curl / wget / httpx / aiohttp / Go-http-client
#   auth       401 unless HTTP Basic auth as RIG_AUTH_USER / RIG_AUTH_PASSWORD (default
#              rig / open-sesame; the htpasswd file is made with `openssl passwd -apr1`)
#   redirect   the www tree, plus /r/<path> -> 301 /<path>, /r2/<path> -> 302 /r/<path> (two
#              hops), /x/<path> -> 302 http://127.0.0.1:<static port>/<path> (another origin)
#   slow       requests queued to RIG_SLOW_RPS per second (limit_req without nodelay: a late
#              first byte, never an error) and bodies sent at RIG_SLOW_RATE bytes/s per connection
#   strict     RIG_STRICT_RATE r/s per client with no burst, nodelay -> 429 + Retry-After: 1
#   once       seeded chaos, for tests that must not be flaky themselves: image files whose URI
#              hashes into RIG_ONCE_503 % / RIG_ONCE_429 % / RIG_ONCE_444 % fail with that outcome
#              (503 and 429 with Retry-After: 1; 444 = connection closed) on their first request,
#              and are served on every request that follows within 60 s; the others are always
#              served. "First" is counted per (Referer, URI), so a run whose input URL is new
#              (e.g. ends in ?run=<unique>) meets every fault again. How: limit_req at 1 r/min
#              keyed on Referer + URI lets exactly the first request through, to an empty root
#              (404 -> the fault); the requests it refuses within the minute get the file.
#   iip        FastCGI front-end of iipsrv: /fcgi-bin/iipsrv.fcgi?IIIF=|DeepZoom=|Zoomify=|FIF=
#              and /iiif/<file>/... ; files from tiff/ (e.g. small_pyr.tif)
#
# Ports: tests/rig/ports.sh. Data: RIG_DATA_DIR (default tests/rig/data, made by
# gen_pyramids.sh). Runtime files: RIG_RUN_DIR (default tests/rig/run): generated configs,
# *.pid, logs/nginx-access.log (all ports; format: port addr [time] "request" status bytes
# rt=... "referer" "user agent" t=<epoch ms>) and logs/access-<port name>.log (one port each).
# RIG_RUN_DIR defaults to tests/rig/run, or tests/rig/run/port-<base> for another RIG_PORT_BASE.
# Re-running is safe: a service whose pid file names a live process is kept; nginx is
# reloaded only when its generated configuration changed. Stop with stop_servers.sh.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
. "$HERE/ports.sh"
DATA=${RIG_DATA_DIR:-$HERE/data}
RUN=$RIG_RUN_DIR                # default set by ports.sh
BIND=127.0.0.1
ID_BASE=http://rig.invalid      # placeholder written into IIIF ids by gen_pyramids.sh
IIPSRV=${IIPSRV:-/usr/lib/iipimage-server/iipsrv.fcgi}
NGINX_BIN=$(command -v nginx || echo /usr/sbin/nginx)
FLAKY_503=${RIG_FLAKY_503:-20} FLAKY_429=${RIG_FLAKY_429:-20} FLAKY_444=${RIG_FLAKY_444:-10}
RATE=${RIG_RATE:-20} BURST=${RIG_BURST:-20} CONNS=${RIG_CONNS:-4}
HOLES_PCT=${RIG_HOLES_PCT:-10}
ONCE_503=${RIG_ONCE_503:-15} ONCE_429=${RIG_ONCE_429:-15} ONCE_444=${RIG_ONCE_444:-10}
AUTH_USER=${RIG_AUTH_USER:-rig} AUTH_PASSWORD=${RIG_AUTH_PASSWORD:-open-sesame}
SLOW_RPS=${RIG_SLOW_RPS:-10} SLOW_RATE=${RIG_SLOW_RATE:-4k} STRICT_RATE=${RIG_STRICT_RATE:-5}

[ -f "$DATA/tiff/small_pyr.tif" ] || { echo "start_servers: no data in $DATA; run gen_pyramids.sh first" >&2; exit 1; }
[ -x "$IIPSRV" ] || { echo "start_servers: $IIPSRV missing; run install_packages.sh" >&2; exit 1; }
[ -x "$NGINX_BIN" ] || { echo "start_servers: nginx missing; run install_packages.sh" >&2; exit 1; }
command -v openssl >/dev/null || { echo "start_servers: openssl missing; run install_packages.sh" >&2; exit 1; }
mkdir -p "$RUN/logs" "$RUN/tmp"

running() { # running PIDFILE WORD: the recorded pid is alive and its exe/command mentions WORD
  local pid
  [ -s "$1" ] || return 1
  pid=$(cat "$1")
  [ -d "/proc/$pid" ] || return 1
  [[ "$(readlink "/proc/$pid/exe" 2>/dev/null) $(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null)" == *"$2"* ]]
}
listening() { (exec 3<>"/dev/tcp/$BIND/$1") 2>/dev/null; }
need_free() {
  local p
  for p in "$@"; do
    if listening "$p"; then
      echo "start_servers: port $p on $BIND is already in use by another program;" \
           "move the rig with RIG_PORT_BASE=..." >&2
      exit 1
    fi
  done
}
wait_for() { # wait_for URL: up to 5 s
  local i
  for i in $(seq 50); do curl -s -o /dev/null --max-time 2 "$1" && return 0; sleep 0.1; done
  echo "start_servers: no answer from $1; see $RUN/logs" >&2
  return 1
}

NGINX_PORTS=("$RIG_PORT_STATIC" "$RIG_PORT_REFERER" "$RIG_PORT_FLAKY" "$RIG_PORT_RATELIMIT"
             "$RIG_PORT_HOLES" "$RIG_PORT_HEADERS" "$RIG_PORT_IIP" "$RIG_PORT_AUTH"
             "$RIG_PORT_REDIRECT" "$RIG_PORT_SLOW" "$RIG_PORT_STRICT" "$RIG_PORT_ONCE")
# check every port before starting anything, so a clash leaves nothing half-started
running "$RUN/iipsrv.pid" iipsrv || need_free "$RIG_PORT_IIPSRV"
running "$RUN/nginx.pid" nginx || need_free "${NGINX_PORTS[@]}"

# ------------------------------------------------------------------ iipsrv (FastCGI)
if running "$RUN/iipsrv.pid" iipsrv; then
  echo "start_servers: iipsrv already running (pid $(cat "$RUN/iipsrv.pid"))"
else
  env LOGFILE="$RUN/logs/iipsrv.log" VERBOSITY=1 FILESYSTEM_PREFIX="$DATA/tiff/" \
      JPEG_QUALITY=90 MAX_IMAGE_CACHE_SIZE=64 MAX_CVT=20000 CORS='*' \
      URI_MAP='iiif=>IIIF' MEMCACHED_SERVERS='' \
      "$IIPSRV" --bind "$BIND:$RIG_PORT_IIPSRV" --backlog 1024 \
      >"$RUN/logs/iipsrv.out" 2>&1 </dev/null &
  echo $! >"$RUN/iipsrv.pid"
  echo "start_servers: iipsrv pid $! on $BIND:$RIG_PORT_IIPSRV"
fi

# ------------------------------------------------------------------ nginx
# iipsrv writes the IIIF @id as scheme + HTTP_HOST + REQUEST_URI. Debian's stock
# /etc/nginx/fastcgi_params sets HTTP_HOST to $host, which has no port, so the @id would
# point at port 80. Our copy sends $host:$server_port instead.
grep -v '^[[:space:]]*fastcgi_param[[:space:]]\+HTTP_HOST[[:space:]]' /etc/nginx/fastcgi_params >"$RUN/fastcgi_params"
echo 'fastcgi_param  HTTP_HOST  $host:$server_port;' >>"$RUN/fastcgi_params"

chaos=""   # nginx rejects a "0%" branch, so a disabled outcome is left out
[ "$FLAKY_503" != 0 ] && chaos+="$FLAKY_503% e503; "
[ "$FLAKY_429" != 0 ] && chaos+="$FLAKY_429% e429; "
[ "$FLAKY_444" != 0 ] && chaos+="$FLAKY_444% e444; "
holes=""; [ "$HOLES_PCT" != 0 ] && holes="$HOLES_PCT% 1;"
once=""
[ "$ONCE_503" != 0 ] && once+="$ONCE_503% e503; "
[ "$ONCE_429" != 0 ] && once+="$ONCE_429% e429; "
[ "$ONCE_444" != 0 ] && once+="$ONCE_444% e444; "
mkdir -p "$RUN/empty"   # the `once` port's root for a faulty tile's first request
# Basic auth: the password file is rewritten only when the user or password changed (an apr1
# hash has a random salt, so a new file would change nginx.conf's neighbour on every start).
if [ "$(cat "$RUN/htpasswd.for" 2>/dev/null)" != "$AUTH_USER:$AUTH_PASSWORD" ]; then
  printf '%s:%s\n' "$AUTH_USER" "$(openssl passwd -apr1 "$AUTH_PASSWORD")" >"$RUN/htpasswd"
  printf '%s' "$AUTH_USER:$AUTH_PASSWORD" >"$RUN/htpasswd.for"
fi
# As root, nginx would run its workers as "nobody", who may not be able to read a checkout
# under /root; run them as the current user instead.
user_line=""; [ "$(id -u)" = 0 ] && user_line="user $(id -un) $(id -gn);"

cat >"$RUN/nginx.conf.new" <<CONF
# Generated by tests/rig/start_servers.sh; edit that script instead.
$user_line
pid $RUN/nginx.pid;
error_log $RUN/logs/nginx-error.log warn;
worker_processes 2;
events { worker_connections 512; }
http {
  include /etc/nginx/mime.types;
  types { application/xml dzi; }
  default_type application/octet-stream;
  client_body_temp_path $RUN/tmp/body;
  proxy_temp_path $RUN/tmp/proxy;
  fastcgi_temp_path $RUN/tmp/fastcgi;
  uwsgi_temp_path $RUN/tmp/uwsgi;
  scgi_temp_path $RUN/tmp/scgi;
  log_format rig '\$server_port \$remote_addr [\$time_local] "\$request" \$status \$body_bytes_sent '
                 'rt=\$request_time "\$http_referer" "\$http_user_agent" t=\$msec';
  access_log $RUN/logs/nginx-access.log rig;
  sendfile on;
  tcp_nodelay on;
  keepalive_timeout 30;
  keepalive_requests 100000;

  # point the placeholder IIIF ids at the port the client used (makes info.json chunked)
  sub_filter_types application/json;
  sub_filter_once off;
  sub_filter '$ID_BASE/' '\$scheme://\$http_host/';

  split_clients "\${request_id}" \$rig_chaos { $chaos * ok; }
  split_clients "\${uri}" \$rig_hole { $holes * 0; }
  split_clients "\${uri}" \$rig_once { $once * ok; }
  map \$rig_once \$rig_once_root { ok $DATA/www; default $RUN/empty; }
  map \$status \$rig_retry_after { 429 1; 503 1; default ""; }
  limit_req_zone \$binary_remote_addr zone=rig_rate:1m rate=${RATE}r/s;
  limit_conn_zone \$binary_remote_addr zone=rig_conn:1m;
  limit_req_zone \$binary_remote_addr zone=rig_slow:1m rate=${SLOW_RPS}r/s;
  limit_req_zone \$binary_remote_addr zone=rig_strict:1m rate=${STRICT_RATE}r/s;
  limit_req_zone "\$http_referer \$uri" zone=rig_once:4m rate=1r/m;

  server {  # static
    listen $BIND:$RIG_PORT_STATIC;
    access_log $RUN/logs/nginx-access.log rig;
    access_log $RUN/logs/access-static.log rig;
    root $DATA/www;
    autoindex on;
    add_header Access-Control-Allow-Origin * always;
  }
  server {  # referer
    listen $BIND:$RIG_PORT_REFERER;
    access_log $RUN/logs/nginx-access.log rig;
    access_log $RUN/logs/access-referer.log rig;
    root $DATA/www;
    location = /viewer.html { }
    location / {
      if (\$http_referer !~ "^http://(127\\.0\\.0\\.1|localhost):$RIG_PORT_REFERER/viewer\\.html") { return 403; }
    }
  }
  server {  # flaky
    listen $BIND:$RIG_PORT_FLAKY;
    access_log $RUN/logs/nginx-access.log rig;
    access_log $RUN/logs/access-flaky.log rig;
    root $DATA/www;
    location ~* \\.(jpe?g|png|webp)\$ {
      if (\$rig_chaos = e503) { add_header Retry-After 1 always; return 503; }
      if (\$rig_chaos = e429) { add_header Retry-After 1 always; return 429; }
      if (\$rig_chaos = e444) { return 444; }
    }
  }
  server {  # ratelimit
    listen $BIND:$RIG_PORT_RATELIMIT;
    access_log $RUN/logs/nginx-access.log rig;
    access_log $RUN/logs/access-ratelimit.log rig;
    root $DATA/www;
    limit_req zone=rig_rate burst=$BURST nodelay;
    limit_req_status 429;
    limit_conn rig_conn $CONNS;
    limit_conn_status 503;
    add_header Retry-After \$rig_retry_after always;
  }
  server {  # holes
    listen $BIND:$RIG_PORT_HOLES;
    access_log $RUN/logs/nginx-access.log rig;
    access_log $RUN/logs/access-holes.log rig;
    root $DATA/www;
    location ~* \\.(jpe?g|png|webp)\$ { if (\$rig_hole) { return 404; } }
  }
  server {  # headers
    listen $BIND:$RIG_PORT_HEADERS;
    access_log $RUN/logs/nginx-access.log rig;
    access_log $RUN/logs/access-headers.log rig;
    root $DATA/www;
    location / {
      if (\$http_cookie !~ "(^|;\\s*)session=s3cret(;|\$)") { return 403; }
      if (\$http_user_agent ~* "^\$|^(python|curl|wget|httpx|aiohttp|go-http-client)|python-") { return 403; }
    }
  }
  server {  # auth
    listen $BIND:$RIG_PORT_AUTH;
    access_log $RUN/logs/nginx-access.log rig;
    access_log $RUN/logs/access-auth.log rig;
    root $DATA/www;
    auth_basic "rig";
    auth_basic_user_file $RUN/htpasswd;
  }
  server {  # redirect
    listen $BIND:$RIG_PORT_REDIRECT;
    access_log $RUN/logs/nginx-access.log rig;
    access_log $RUN/logs/access-redirect.log rig;
    root $DATA/www;
    absolute_redirect off;   # same-origin Locations stay relative: /small/... not http://host/...
    location ~ ^/r/(.*)\$ { return 301 /\$1\$is_args\$args; }
    location ~ ^/r2/(.*)\$ { return 302 /r/\$1\$is_args\$args; }
    location ~ ^/x/(.*)\$ { return 302 http://$BIND:$RIG_PORT_STATIC/\$1\$is_args\$args; }
  }
  server {  # slow
    listen $BIND:$RIG_PORT_SLOW;
    access_log $RUN/logs/nginx-access.log rig;
    access_log $RUN/logs/access-slow.log rig;
    root $DATA/www;
    limit_req zone=rig_slow burst=1000;   # no nodelay: excess requests wait, none is refused
    limit_rate $SLOW_RATE;
    sendfile off;                          # limit_rate paces small buffers evenly
    output_buffers 1 8k;
  }
  server {  # strict
    listen $BIND:$RIG_PORT_STRICT;
    access_log $RUN/logs/nginx-access.log rig;
    access_log $RUN/logs/access-strict.log rig;
    root $DATA/www;
    limit_req zone=rig_strict nodelay;
    limit_req_status 429;
    add_header Retry-After \$rig_retry_after always;
  }
  server {  # once
    listen $BIND:$RIG_PORT_ONCE;
    access_log $RUN/logs/nginx-access.log rig;
    access_log $RUN/logs/access-once.log rig;
    root $DATA/www;
    location ~* \\.(jpe?g|png|webp)\$ {
      limit_req zone=rig_once;          # the first request passes (to the fault), later ones get 418
      limit_req_status 418;
      error_page 418 = @serve;
      root \$rig_once_root;             # a faulty tile's first request finds nothing here...
      error_page 404 = @fault;          # ...and turns into its fault
    }
    location @serve { root $DATA/www; }
    location @fault {
      if (\$rig_once = e503) { add_header Retry-After 1 always; return 503; }
      if (\$rig_once = e429) { add_header Retry-After 1 always; return 429; }
      if (\$rig_once = e444) { return 444; }
      return 404;                       # a tile that does not exist at all
    }
  }
  server {  # iip: iipsrv over FastCGI
    listen $BIND:$RIG_PORT_IIP;
    access_log $RUN/logs/nginx-access.log rig;
    access_log $RUN/logs/access-iip.log rig;
    location = /fcgi-bin/iipsrv.fcgi {
      include $RUN/fastcgi_params;
      fastcgi_pass $BIND:$RIG_PORT_IIPSRV;
    }
    location /iiif/ {   # iipsrv URI_MAP iiif=>IIIF: /iiif/small_pyr.tif/info.json
      include $RUN/fastcgi_params;
      fastcgi_pass $BIND:$RIG_PORT_IIPSRV;
    }
  }
}
CONF
NGINX=("$NGINX_BIN" -p "$RUN" -c "$RUN/nginx.conf" -e "$RUN/logs/nginx-error.log")
if running "$RUN/nginx.pid" nginx; then
  if cmp -s "$RUN/nginx.conf.new" "$RUN/nginx.conf"; then
    rm -f "$RUN/nginx.conf.new"
    echo "start_servers: nginx already running (pid $(cat "$RUN/nginx.pid"))"
  else
    mv "$RUN/nginx.conf.new" "$RUN/nginx.conf"
    "${NGINX[@]}" -t -q
    "${NGINX[@]}" -s reload
    sleep 1   # a reload is asynchronous: give the new workers time to take over
    echo "start_servers: nginx (pid $(cat "$RUN/nginx.pid")) reloaded with a new configuration"
  fi
else
  mv "$RUN/nginx.conf.new" "$RUN/nginx.conf"
  "${NGINX[@]}" -t -q
  rm -f "$RUN/nginx.pid"
  "${NGINX[@]}" </dev/null >>"$RUN/logs/nginx-error.log" 2>&1   # daemonises; pid file by nginx
  for _ in $(seq 50); do [ -s "$RUN/nginx.pid" ] && break; sleep 0.1; done
  echo "start_servers: nginx pid $(cat "$RUN/nginx.pid") on $BIND:$RIG_PORT_STATIC..$RIG_PORT_ONCE"
fi

wait_for "http://$BIND:$RIG_PORT_STATIC/small/dz254o1.dzi"
wait_for "http://$BIND:$RIG_PORT_IIP/fcgi-bin/iipsrv.fcgi?FIF=small_pyr.tif&obj=IIP,1.0&obj=Max-size"
echo "start_servers: ready (pids and logs in $RUN)"
