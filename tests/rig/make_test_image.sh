#!/usr/bin/env bash
# Build the rig's synthetic test image with the vips command line alone (8-bit bands, no
# random numbers), so that two runs on the same vips version give the same pixels.
#
#   red   = x & 255                                  repeats every 256 columns
#   green = y & 255                                  repeats every 256 rows
#   blue  = (37*(x>>8) + 101*(y>>8)) & 255           differs between neighbouring 256x256 blocks
#   plus the white text "dezoomify-test WxH" (DejaVu Sans Bold) in the middle
#
# Red and green locate a pixel inside its 256-block, blue names the block, so a tile that is
# shifted, dropped or repeated by a stitcher changes the pixels. A JSON file next to OUT
# records the formula and the text's bounding box.
#
# usage: make_test_image.sh WIDTH HEIGHT OUT.v [TEXT]     (OUT may be any vips format)
set -euo pipefail
[ $# -ge 3 ] || { echo "usage: $0 WIDTH HEIGHT OUT [TEXT]" >&2; exit 2; }
W=$1 H=$2 OUT=$3
TEXT=${4:-"dezoomify-test ${W}x${H}"}
WORK=$(mktemp -d "${TMPDIR:-/tmp}/rigimg.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
BX=$(( (W + 255) / 256 )) BY=$(( (H + 255) / 256 ))   # 256-blocks across / down

# red: a 0..255 ramp, repeated across, cut to W, then repeated down
vips grey "$WORK/ramp.v" 256 1 --uchar
vips replicate "$WORK/ramp.v" "$WORK/row_long.v" "$BX" 1
vips extract_area "$WORK/row_long.v" "$WORK/row.v" 0 0 "$W" 1
vips replicate "$WORK/row.v" "$WORK/red.v" 1 "$H"
# green: the same ramp turned into a column
vips rot "$WORK/ramp.v" "$WORK/ramp_col.v" d90
vips replicate "$WORK/ramp_col.v" "$WORK/col_long.v" 1 "$BY"
vips extract_area "$WORK/col_long.v" "$WORK/col.v" 0 0 1 "$H"
vips replicate "$WORK/col.v" "$WORK/green.v" "$W" 1
# blue: one pixel per block (xyz gives the block's x,y), 37*bx + 101*by, & 255, blown up x256
vips xyz "$WORK/blocks.v" "$BX" "$BY"
printf '2 1\n37 101\n' > "$WORK/weights.mat"
vips recomb "$WORK/blocks.v" "$WORK/blocksum.v" "$WORK/weights.mat"
vips cast "$WORK/blocksum.v" "$WORK/blockint.v" int
vips boolean_const "$WORK/blockint.v" "$WORK/blockmod.v" and 255
vips cast "$WORK/blockmod.v" "$WORK/blockid.v" uchar
vips zoom "$WORK/blockid.v" "$WORK/blue_big.v" 256 256
vips extract_area "$WORK/blue_big.v" "$WORK/blue.v" 0 0 "$W" "$H"
vips bandjoin "$WORK/red.v $WORK/green.v $WORK/blue.v" "$WORK/joined.v"
vips copy "$WORK/joined.v" "$WORK/rgb.v" --interpretation srgb

# text: rendered into a box 60% wide and 12% high; only a patch of that size is blended
# and put back, so this stays cheap on large images
BOXW=$(( W * 6 / 10 )) BOXH=$(( H * 12 / 100 ))
TX=0 TY=0 TW=0 TH=0
if [ "$BOXW" -ge 20 ] && [ "$BOXH" -ge 8 ] && vips text "$WORK/text.v" "$TEXT" \
     --font "DejaVu Sans Bold" --width "$BOXW" --height "$BOXH" 2>/dev/null; then
  TW=$(vipsheader -f width "$WORK/text.v") TH=$(vipsheader -f height "$WORK/text.v")
  TX=$(( (W - TW) / 2 )) TY=$(( (H - TH) / 2 ))
  vips extract_area "$WORK/rgb.v" "$WORK/under.v" "$TX" "$TY" "$TW" "$TH"
  vips black "$WORK/zero.v" "$TW" "$TH" --bands 3
  vips linear "$WORK/zero.v" "$WORK/white.v" 1 255 --uchar
  vips ifthenelse "$WORK/text.v" "$WORK/white.v" "$WORK/under.v" "$WORK/blended.v" --blend
  vips insert "$WORK/rgb.v" "$WORK/blended.v" "$WORK/final.v" "$TX" "$TY"
else
  cp "$WORK/rgb.v" "$WORK/final.v"
fi
vips copy "$WORK/final.v" "$OUT"
cat > "${OUT%.*}.json" <<JSON
{"width": $W, "height": $H,
 "formula": {"R": "x & 255", "G": "y & 255", "B": "(37*(x>>8) + 101*(y>>8)) & 255"},
 "label": "$TEXT", "label_bbox": {"x": $TX, "y": $TY, "w": $TW, "h": $TH}}
JSON
echo "make_test_image: $OUT $(vipsheader "$OUT")"
