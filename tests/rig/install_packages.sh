#!/usr/bin/env bash
# Install the Debian/Ubuntu packages behind the loopback test rig.
#
#   libvips-tools     vips dzsave / tiffsave: makes the test image and every pyramid
#   iipimage-server   iipsrv.fcgi: IIP, IIIF 2, DeepZoom and Zoomify from a pyramidal TIFF
#   nginx-light       static and fault-injecting ports, FastCGI front-end for iipsrv
#                     (falls back to "nginx" where the -light flavour no longer exists)
#   lighttpd          not used as a server: it satisfies iipimage-server's
#                     "libapache2-mod-fcgid | lighttpd" dependency without pulling apache2
#   libfcgi-bin       cgi-fcgi, to query iipsrv without a web server when debugging
#   curl              readiness checks in start_servers.sh
#   openssl           `openssl passwd -apr1`: the Basic-auth port's htpasswd file
#   fonts-dejavu-core "DejaVu Sans Bold" for the label of the test image
#   pngcheck          validates the gigapixel PNGs of tests/test_big_outputs.py
#   chromium          headless browser: screenshots of the .iiif output's viewer.html
#   iproute2          `ip`: tests/test_hostpolicy.py sets up loopback addresses in a network
#                     namespace (`unshare -rn`, util-linux) for the address-policy tests
#   file              brings libmagic1, loaded by python-magic, which the IIIF validator
#                     (PyPI iiif-validator, tests/test_tiletree_outputs.py) imports
#   gdal-bin          gdal_translate, the benchmark suite's peer downloader (bench/run_suite.py;
#                     its smoke test runs in CI); libgdal adds ~100 MB. WITH_GDAL=0 leaves it out
#   time              GNU time (/usr/bin/time -v): the bench's wall time, peak RSS and CPU figures
#
# Idempotent: when every binary and file below is present, apt is not called at all
# (FORCE=1 runs apt anyway). Uses sudo only when not root.
set -euo pipefail

IIPSRV=${IIPSRV:-/usr/lib/iipimage-server/iipsrv.fcgi}
FONT=/usr/share/fonts/truetype/dejavu/DejaVuSans-Bold.ttf

have() { # have CMD-or-PATH: true when the command is on PATH (or in sbin) / the file exists
  case $1 in
    /*) [ -e "$1" ] ;;
    *) command -v "$1" >/dev/null 2>&1 || [ -x "/usr/sbin/$1" ] || [ -x "/sbin/$1" ] ;;
  esac
}

needed=(vips vipsheader nginx curl openssl cgi-fcgi pngcheck chromium file ip unshare /usr/bin/time "$IIPSRV" "$FONT" /etc/nginx/fastcgi_params /etc/nginx/mime.types)
[ "${WITH_GDAL:-1}" = 1 ] && needed+=(gdal_translate)
missing=()
for item in "${needed[@]}"; do have "$item" || missing+=("$item"); done
if [ ${#missing[@]} = 0 ] && [ "${FORCE:-0}" != 1 ]; then
  echo "install_packages: all rig tools present"
  exit 0
fi
echo "install_packages: missing: ${missing[*]:-none (FORCE=1)}"

command -v apt-get >/dev/null || { echo "install_packages: apt-get not found; install by hand: ${missing[*]}" >&2; exit 1; }
SUDO=()
if [ "$(id -u)" != 0 ]; then
  command -v sudo >/dev/null || { echo "install_packages: not root and no sudo" >&2; exit 1; }
  SUDO=(sudo -n)
fi
export DEBIAN_FRONTEND=noninteractive
"${SUDO[@]}" apt-get update -qq

nginx_pkg=nginx-light
apt-cache show nginx-light >/dev/null 2>&1 || nginx_pkg=nginx
pkgs=(libvips-tools iipimage-server lighttpd "$nginx_pkg" libfcgi-bin curl openssl ca-certificates fonts-dejavu-core pngcheck chromium file iproute2 util-linux time)
[ "${WITH_GDAL:-1}" = 1 ] && pkgs+=(gdal-bin)

# Containers usually ship /usr/sbin/policy-rc.d (exit 101), so the postinst scripts do not
# start the distribution's nginx/lighttpd on port 80. The rig never uses those services;
# on a machine where they do start, they are left alone.
"${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive \
  apt-get install -y -qq --no-install-recommends "${pkgs[@]}" >/dev/null
echo "install_packages: installed ${pkgs[*]}"
vips --version
