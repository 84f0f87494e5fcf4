# Sourced by scripts/second-victim.sh and scripts/second-victim-siblings.sh (not run on its own): the
# second victim's flags and the steps both scripts take after its zoo. Every step resumes.
export PYTHONPATH="$PWD/examples${PYTHONPATH:+:$PYTHONPATH}"
u() { .venv/bin/uapfp -q --trust-code owner_nets "$@"; }

# victim2 NAME [zoo build flags...]: the zoo runs/zoo-NAME around the owner's ConvMixer (its weights in
# runs/victim2/convmixer.safetensors), its kit runs/kit-NAME, the kit evaluated on the zoo with `uap`
# and `siblings`, and the families benchmark on both halves (suspects in runs/families-v2).
victim2() {
    local name=$1
    shift
    u zoo build --victim owner_nets:convmixer --victim-weights runs/victim2/convmixer.safetensors \
        --victim-data "fashion-mnist[0:30000]" "$@" --out "runs/zoo-$name" --ray
    # --alpha 0.05: the default when results-fmnist.md's figures were measured (at 0.01, since 2026-12-07, this
    # victim's kit takes siblings: uap's p cannot fall below 0.0137 here; docs/method.md)
    [ -f "runs/kit-$name/kit.json" ] || u protect --zoo "runs/zoo-$name" --out "runs/kit-$name" --alpha 0.05
    for m in uap siblings; do
        u evaluate --kit "runs/kit-$name" --zoo "runs/zoo-$name" --method $m --json "runs/eval-$name-$m.json"
    done
    u bench families --zoo "runs/zoo-$name" --kit "runs/kit-$name" --models runs/families-v2 --halves both \
        --out "runs/bench-families-$name.json"
}
