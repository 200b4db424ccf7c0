# Sourced by the bench scripts: make_calib_mix OUT writes the "other text" calibration mix
# (the first ~120 KB of Grimm, Shakespeare, TinyStories and War and Peace, each cut at a
# line end; 389,646 bytes) unless OUT exists. No Wikipedia: that is the evaluation text.
make_calib_mix() {
  [ -f "$1" ] || for f in grimm-tales tinyshakespeare tinystories-sample war-and-peace-ru; do
    head -c 120000 "../shared/corpus/$f.txt" | sed '$d'
  done > "$1"
}
