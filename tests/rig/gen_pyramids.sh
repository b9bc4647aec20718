#!/usr/bin/env bash
# Make the rig's test images and tile pyramids with libvips, once.
#
#   SIZES="small"          default; "small medium" adds the 10000x7000 image the bench uses
#   BIG=1                  adds "big", 30000x20000 (600 MP): its master, the iipsrv TIFF and
#                          a DZI; about 2 minutes and 2.5 GB (the bench's scale figures)
#   RIG_DATA_DIR           default: tests/rig/data (git-ignored)
#   FORCE=1                rebuild everything
#
# Caching: every product has a stamp file in $DATA/.stamps holding a signature (hash of this
# script, make_test_image.sh and the vips version). A product is rebuilt only when its
# output is missing or its stamp does not hold the current signature; rebuilding a master
# image invalidates everything made from it. A second run with nothing to do takes ~50 ms.
#
# Layout under $DATA:
#   src/<size>.v + <size>.json        master image (vips format) and its description
#   www/ref/<size>.png, <size>.json   lossless reference for pixel comparisons
#   www/<size>/dz254o1.dzi            DeepZoom, vips defaults: 254 px, overlap 1, ".jpeg" Q75
#   www/<size>/dz256o0q85.dzi         DeepZoom 256 px, overlap 0, ".jpg" Q85    (small, medium, big)
#   www/<size>/dz128o0q85.dzi         DeepZoom 128 px, overlap 0, ".jpg" Q85: 4,345 tiles (medium)
#   www/<size>/dz510o1png.dzi         DeepZoom 510 px, overlap 1, lossless PNG tiles  (small)
#   www/<size>/zoomify256/            Zoomify 256 px, Q85: ImageProperties.xml + TileGroupN/z-x-y.jpg
#   www/<size>/zoomify512/            Zoomify 512 px                                 (small)
#   www/<size>/iiif512/, iiif256/     IIIF Image API 2, level 0 (iiif256: small only)
#   www/<size>/iiif3_512/             IIIF Image API 3, level 0                      (small)
#   www/<size>/google256/             libvips google layout: {z}/{y}/{x}.jpg Q85, edge tiles   (small)
#                                     padded to 256 px with white, blank tiles left out (blank.png)
#   tiff/<size>_pyr.tif               tiled pyramidal JPEG TIFF, 256 px, Q90, served by iipsrv
#   www/viewer.html                   the page whose URL the Referer-protected port expects
#
# IIIF ids: vips writes id = "<--id>/<basename>". We pass the placeholder $ID_BASE/<size>;
# nginx rewrites it on every port to the scheme://host:port the client asked, so the data
# does not depend on the port numbers and a client that follows the id stays on its port.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
DATA=${RIG_DATA_DIR:-$HERE/data}
SIZES=${SIZES:-small}
[ "${BIG:-0}" = 1 ] && [[ " $SIZES " != *" big "* ]] && SIZES="$SIZES big"
ID_BASE=http://rig.invalid      # must match start_servers.sh
export VIPS_CONCURRENCY=${VIPS_CONCURRENCY:-$(nproc)}

command -v vips >/dev/null || { echo "gen_pyramids: vips not found (run tests/rig/install_packages.sh)" >&2; exit 1; }
SIG=$( { cat "$HERE/gen_pyramids.sh" "$HERE/make_test_image.sh"; vips --version; echo "$ID_BASE"; } \
       | sha256sum | cut -c1-16)
STAMPS=$DATA/.stamps
mkdir -p "$DATA"/{src,www/ref,tiff} "$STAMPS"

fresh() { # fresh NAME OUTPUT: the stamp holds the current signature and OUTPUT exists
  [ "${FORCE:-0}" != 1 ] && [ -e "$2" ] && [ "$(cat "$STAMPS/$1" 2>/dev/null)" = "$SIG" ]
}
step() { # step NAME OUTPUT CMD...: run CMD unless fresh, then stamp
  local name=$1 out=$2; shift 2
  fresh "$name" "$out" && return 0
  rm -f "$STAMPS/$name"
  local t0=$SECONDS
  "$@" >/dev/null
  echo "$SIG" > "$STAMPS/$name"
  echo "gen_pyramids: built $name ($((SECONDS - t0)) s)"
}
dz() { # dz SRC DIR NAME [dzsave options]: dzsave into an empty place (it would merge otherwise)
  local src=$1 dir=$2 name=$3; shift 3
  rm -rf "${dir:?}/$name" "$dir/$name.dzi" "$dir/${name}_files"
  mkdir -p "$dir"
  vips dzsave "$src" "$dir/$name" "$@"
}
size_of() {
  case $1 in small) echo "1000 700" ;; medium) echo "10000 7000" ;; big) echo "30000 20000" ;;
    *) echo "gen_pyramids: unknown size '$1' (small, medium, big)" >&2; exit 2 ;; esac
}

for s in $SIZES; do
  read -r W H < <(size_of "$s")
  src=$DATA/src/$s.v www=$DATA/www/$s
  if ! fresh "master-$s" "$src"; then
    rm -f "$STAMPS/"*"-$s"          # everything made from the old master is stale
    step "master-$s" "$src" "$HERE/make_test_image.sh" "$W" "$H" "$src"
  fi
  cp "$DATA/src/$s.json" "$DATA/www/ref/$s.json"
  if [ "$s" = big ]; then  # only what the scale benchmark reads: no PNG reference, no layouts
    step "tiff-$s"       "$DATA/tiff/${s}_pyr.tif"     vips tiffsave "$src" "$DATA/tiff/${s}_pyr.tif" \
         --tile --pyramid --compression jpeg --Q 90 --tile-width 256 --tile-height 256
    step "dz256o0q85-$s" "$www/dz256o0q85.dzi" dz "$src" "$www" dz256o0q85 --tile-size 256 --overlap 0 --suffix '.jpg[Q=85]'
    continue
  fi
  # filter=all keeps the medium PNG small (~0.4 MB instead of ~150 MB with no filter)
  step "ref-$s"        "$DATA/www/ref/$s.png"        vips copy "$src" "$DATA/www/ref/$s.png[compression=9,filter=all]"
  step "dz254o1-$s"    "$www/dz254o1.dzi"            dz "$src" "$www" dz254o1
  step "zoomify256-$s" "$www/zoomify256/ImageProperties.xml" \
       dz "$src" "$www" zoomify256 --layout zoomify --tile-size 256 --suffix '.jpg[Q=85]'
  step "iiif512-$s"    "$www/iiif512/info.json"      dz "$src" "$www" iiif512 --layout iiif --tile-size 512 --id "$ID_BASE/$s"
  step "tiff-$s"       "$DATA/tiff/${s}_pyr.tif"     vips tiffsave "$src" "$DATA/tiff/${s}_pyr.tif" \
       --tile --pyramid --compression jpeg --Q 90 --tile-width 256 --tile-height 256
  if [ "$s" = medium ]; then
    step "dz256o0q85-$s" "$www/dz256o0q85.dzi" dz "$src" "$www" dz256o0q85 --tile-size 256 --overlap 0 --suffix '.jpg[Q=85]'
    step "dz128o0q85-$s" "$www/dz128o0q85.dzi" dz "$src" "$www" dz128o0q85 --tile-size 128 --overlap 0 --suffix '.jpg[Q=85]'
  fi
  if [ "$s" = small ]; then
    step "dz256o0q85-$s" "$www/dz256o0q85.dzi" dz "$src" "$www" dz256o0q85 --tile-size 256 --overlap 0 --suffix '.jpg[Q=85]'
    step "dz510o1png-$s" "$www/dz510o1png.dzi" dz "$src" "$www" dz510o1png --tile-size 510 --overlap 1 --suffix '.png[filter=all]'
    step "zoomify512-$s" "$www/zoomify512/ImageProperties.xml" \
         dz "$src" "$www" zoomify512 --layout zoomify --tile-size 512 --suffix '.jpg[Q=85]'
    step "iiif256-$s"    "$www/iiif256/info.json"   dz "$src" "$www" iiif256 --layout iiif --tile-size 256 --id "$ID_BASE/$s"
    step "iiif3_512-$s"  "$www/iiif3_512/info.json" dz "$src" "$www" iiif3_512 --layout iiif3 --tile-size 512 --id "$ID_BASE/$s"
    step "google256-$s"  "$www/google256/0/0/0.jpg" dz "$src" "$www" google256 --layout google --tile-size 256 --suffix '.jpg[Q=85]'
  fi
done

[ -f "$DATA/www/viewer.html" ] || printf '%s\n' '<!doctype html><title>viewer</title>' \
  '<p>The referer port serves tiles only to requests whose Referer is this page.' > "$DATA/www/viewer.html"
