#!/usr/bin/env bash
# Everything a lent GPU should run, as one command that ends inside its time budget:
#
#   tools/gpu_run.sh OUT                           # on the device (after tools/gpu_prepare.sh here)
#   FASTNST_GPU_DRY_RUN=1 tools/gpu_run.sh OUT     # the same steps on a CPU at toy sizes
#
# Steps, in order: install (the carried wheels), cuda_tests (pytest -m cuda), infer_model
# (model only at 1920x1080), infer_video (end to end, 1920x1080), bench_train (256 px), train
# (the time-boxed full-scale `classics` run on the carried photos and styles, exported);
# train_video (not in the defaults: the recurrent video recipe on the carried clips, for a
# rerun of its own, `FASTNST_GPU_STEPS="install train_video"`).
# Each step has its own `timeout`, never more than the time left; a failed step does not stop
# the later ones. OUT gets at most 4 files: results.json (one entry per step: status, seconds,
# figures; the device and versions), classics-gpu.safetensors and classics-video-gpu.safetensors
# (the trained models) and logs.tar.gz (every step's log, the benchmark JSONs, the test
# report, the runs' folders).
#
# Environment: FASTNST_GPU_BUDGET (seconds for all steps: 420, dry run 300; give the device
# tool's timeout_s about 60 more), FASTNST_GPU_STEPS (a subset, in the order to run, for a
# rerun), FASTNST_GPU_BATCH (training batch, 16), FASTNST_GPU_CARRY (the carry folder,
# .gpu_carry), FASTNST_GPU_VIDEO_STEPS (train_video's schedule, 3000; max_time stops it
# sooner), FASTNST_GPU_VIDEO_ARGS (Hydra overrides appended to train_video's), PYTHON (python3).
set -u
OUT=${1:?usage: tools/gpu_run.sh OUT}
REPO=$(cd "$(dirname "$0")/.." && pwd)
cd "$REPO" || exit 1
mkdir -p "$OUT" && OUT=$(cd "$OUT" && pwd)
DRY=${FASTNST_GPU_DRY_RUN:-0}
CARRY=$(realpath -m "${FASTNST_GPU_CARRY:-$REPO/.gpu_carry}")
PY=${PYTHON:-python3}
BATCH=${FASTNST_GPU_BATCH:-16}
STEPS=${FASTNST_GPU_STEPS:-install cuda_tests infer_model infer_video bench_train train}
if [ "$DRY" = 1 ]; then BUDGET=${FASTNST_GPU_BUDGET:-300}; else BUDGET=${FASTNST_GPU_BUDGET:-420}; fi
START=$(date +%s)
DEADLINE=$((START + BUDGET))
WORK=$(mktemp -d "${TMPDIR:-/tmp}/fastnst-gpu.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
mkdir -p "$WORK/logs"
export PYTHONUNBUFFERED=1 PYTHONPATH="$REPO${PYTHONPATH:+:$PYTHONPATH}"
export FASTNST_GPU_DRY_RUN=$DRY
echo "gpu_run: steps [$STEPS], budget ${BUDGET} s, dry run $DRY, carry $CARRY"

# note NAME CODE MILLISECONDS LIMIT [WHY]: one line of steps.tsv (CODE: the exit code,
# "skipped" or "notime"), which tools/gpu_results.py turns into results.json.
note() {
    printf '%s\t%s\t%s\t%s\t%s\n' "$1" "$2" "$3" "$4" "${5:-}" >>"$WORK/steps.tsv"
    echo "gpu_run: $1: $2${5:+ ($5)} after $(($(date +%s) - START)) s in all"
}

# step NAME LIMIT COMMAND...: run with its own timeout (at most the time left) and log to
# logs/NAME.log.
step() {
    local name=$1 limit=$2 left began
    shift 2
    left=$((DEADLINE - $(date +%s)))
    ((limit > left)) && limit=$left
    if ((limit < 5)); then
        note "$name" notime 0 "$limit" "the budget is spent"
        return
    fi
    began=$(date +%s%N)
    timeout --kill-after=10 "$limit" "$@" >"$WORK/logs/$name.log" 2>&1
    note "$name" $? $((($(date +%s%N) - began) / 1000000)) "$limit"
}

install() {
    if ! compgen -G "$CARRY/wheels/*.whl" >/dev/null; then
        if [ "$DRY" = 1 ]; then note install skipped 0 0 "no carried wheels"; return; fi
        step install 5 sh -c "echo 'no wheels in $CARRY/wheels: run tools/gpu_prepare.sh'; exit 1"
        return
    fi
    step install 90 "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir \
        --upgrade --target "$WORK/site" "$CARRY"/wheels/*.whl
    # The dry run keeps its own environment: the wheels are only checked to install.
    [ "$DRY" = 1 ] || export PYTHONPATH="$WORK/site:$PYTHONPATH"
}

cuda_tests() {
    step cuda_tests 180 "$PY" -m pytest -m cuda tests/test_cuda.py -q -p no:cacheprovider \
        --junitxml="$WORK/cuda_tests.xml"
}

infer_model() {
    local args=(--sizes 1920x1080)
    [ "$DRY" = 1 ] && args=(--device cpu --sizes 64x48 --repeats 1 --warmup 0 --threads 1)
    step infer_model 180 "$PY" tools/bench_infer.py --sections model --model classics \
        "${args[@]}" --json "$WORK/infer_model.json"
}

infer_video() {
    local args=(--sizes 1920x1080 --precisions fp16)
    [ "$DRY" = 1 ] && args=(--device cpu --sizes 64x48 --video-frames 4 --threads 1)
    step infer_video 120 "$PY" tools/bench_infer.py --sections video --model classics \
        "${args[@]}" --json "$WORK/infer_video.json"
}

bench_train() {
    local args=(--sizes 256 --batches 4 "$BATCH")
    [ "$DRY" = 1 ] && args=(--device cpu --sizes 32 --batches 2 --steps 1 --warmup 0 --width 0.25)
    step bench_train 120 "$PY" tools/bench_train.py "${args[@]}" --json "$WORK/bench_train.json"
}

# The dry run's toy settings for both training steps (a tiny CPU run of each).
DRY_TRAIN=(trainer.accelerator=cpu data.image_size=32 data.val_size=32 data.num_workers=0
    data.num_val=1 model.style_size=48 model.optim.warmup_steps=1
    callbacks.checkpoint.every_n_train_steps=1)

# training_time NAME RESERVE STARTUP: what a training step gets, the time left but a reserve
# for the export and the report (LEFT) and, less its start-up, for training (TRAIN_S); notes
# notime and fails when under 10 s are left.
training_time() {
    LEFT=$((DEADLINE - $(date +%s) - $2))
    TRAIN_S=$((LEFT - $3))
    if ((TRAIN_S < 10)); then
        note "$1" notime 0 "$LEFT" "under 10 s left for training"
        return 1
    fi
}

# run_training NAME RESERVE STEPS BATCH MODEL OVERRIDES...: `fastnst train` on the carried
# styles and photos, time-boxed to TRAIN_S by max_time, exported as MODEL in $WORK/NAME; its
# plan goes to NAME_plan.txt for tools/gpu_results.py.
run_training() {
    local name=$1 reserve=$2 steps=$3 batch=$4 model=$5
    shift 5
    echo "$steps $TRAIN_S $batch" >"$WORK/${name}_plan.txt"
    step "$name" $((LEFT + reserve - 15)) "$PY" -m fastnst train style=folder \
        "style.dir=$CARRY/styles" data=folder "data.dir=$CARRY/photos" "$@" \
        "trainer.max_steps=$steps" \
        "trainer.max_time='$(printf '00:00:%02d:%02d' $((TRAIN_S / 60)) $((TRAIN_S % 60)))'" \
        trainer.enable_progress_bar=false "export_name=$model" "hydra.run.dir=$WORK/$name"
}

train() {
    # The training gets what is left but a reserve for its start-up, the export and the
    # report; its step count comes from bench_train's speed so the LR schedule ends on time.
    local reserve=75 startup=40 batch=$BATCH steps args
    [ "$DRY" = 1 ] && reserve=20 startup=5 batch=2
    training_time train "$reserve" "$startup" || return
    steps=$("$PY" tools/gpu_results.py plan-steps "$WORK/bench_train.json" "$BATCH" "$TRAIN_S")
    args=(data.image_size=256 data.val_size=256 "data.batch_size=$batch" data.num_workers=8
        "data.samples_per_epoch=$((BATCH * 500))" trainer.log_every_n_steps=50
        callbacks.checkpoint.every_n_train_steps=500 callbacks.sample_grid.every_n_steps=1000
        model.check_finite_every=50)
    if [ "$DRY" = 1 ]; then
        steps=3
        args=("${DRY_TRAIN[@]}" "data.batch_size=$batch" model.net.width=0.25
            model.net.num_residual=1)
    fi
    run_training train "$reserve" "$steps" "$batch" classics-gpu.safetensors "${args[@]}"
}

train_video() {
    # Issue 21's compute path (docs/VIDEO.md): the recurrent video recipe run far longer than
    # the CPU allows, on the carried clips and photos, exported. Not in the default steps:
    # a rerun of its own (FASTNST_GPU_STEPS="install train_video"). The recipe is the
    # style-keeping one (style x2, compound 200, relaxed style loss, gate half open) from the
    # bundled still `classics`; FASTNST_GPU_VIDEO_ARGS appends Hydra overrides (later wins).
    local reserve=60 startup=40 batch=8 steps=${FASTNST_GPU_VIDEO_STEPS:-3000} args
    if ! compgen -G "$CARRY/clips/*" >/dev/null; then
        note train_video skipped 0 0 "no clips in $CARRY/clips (tools/gpu_prepare.sh --clips)"
        return
    fi
    [ "$DRY" = 1 ] && reserve=20 startup=5 batch=2 steps=3
    training_time train_video "$reserve" "$startup" || return
    args=(stage=temporal init_from=classics model.net.recurrent=true model.temporal.gate_start=0
        loss.relax_warps=8 loss.style_weight=2 loss.compound_weight=200
        "data.videos=$CARRY/clips" "data.video_cache=$WORK/flow_cache" data.image_size=256
        data.val_size=256 "data.batch_size=$batch" data.num_workers=8 trainer.log_every_n_steps=50
        callbacks.checkpoint.every_n_train_steps=500 callbacks.sample_grid.every_n_steps=500)
    [ "$DRY" = 1 ] && args+=("${DRY_TRAIN[@]}" data.video_long_side=64)
    # shellcheck disable=SC2206 # the overrides are words by design
    args+=(${FASTNST_GPU_VIDEO_ARGS:-})
    run_training train_video "$reserve" "$steps" "$batch" classics-video-gpu.safetensors "${args[@]}"
}

for name in $STEPS; do
    case $name in
        install | cuda_tests | infer_model | infer_video | bench_train | train | train_video) "$name" ;;
        *) note "$name" skipped 0 0 "unknown step" ;;
    esac
done

"$PY" tools/gpu_results.py write --work "$WORK" --out "$OUT" --dry-run "$DRY" \
    --budget "$BUDGET" --started "$START"
