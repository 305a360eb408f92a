#!/bin/bash
# Start one Ray node inside a Slurm job and block until it is told to stop (SIGTERM).
#
#   ray_node.sh [--dry-run] head   PYTHON HEAD_IP PORT DASHBOARD_PORT   # first node, from the batch script
#   ray_node.sh [--dry-run] worker PYTHON HEAD_IP:PORT                  # every other node, through srun
#
# --dry-run prints the `ray start` command this node would run (one argument per line) and exits.
# PYTHON is the interpreter of the environment that holds Ray; its `ray` command is used.
# The node `exec`s `ray start --block`, so Slurm tracks the Ray processes as part of the job (a daemonised
# `ray start` would escape the job and outlive it) and a SIGTERM to this process drains and stops Ray.
#
# Why each setting (the classic Ray-on-Slurm mistakes):
#   --num-cpus/--num-gpus from the allocation   Ray's autodetection sees the whole machine, not the cores
#                                                and GPUs Slurm gave this job (SLURM_GPUS_PER_TASK is
#                                                empty when GPUs are requested with --gres).
#   --temp-dir per job and node                  two jobs (or two simulated nodes) on one machine must not
#                                                share sockets or session directories; kept short because
#                                                Unix socket paths are limited to 107 bytes.
#   random worker/agent ports (0)                only the head's GCS port has to be known in advance; it
#                                                is derived from the job id by the batch script.
#   dashboard off, bound to 127.0.0.1            Ray's dashboard and job API run code for anyone who can
#                                                reach them.
#   --labels slurm-node=<name>                   lets the batch script check that every node has joined.
#   --object-store-memory from the job's memory  the default (30 % of the machine) can exceed the job's
#                                                memory limit on a shared node.
# Token authentication: the batch script exports RAY_AUTH_MODE=token and RAY_AUTH_TOKEN_PATH (one token
# file per job on the shared filesystem); srun passes both to every node.
#
# Optional environment: SPIKESWEEP_RAY_LOG_DIR (this node's output goes to ray-<jobid>-<node>.log there,
# named by the Slurm node, which srun's %N cannot do when several nodes share a host),
# SPIKESWEEP_RAY_TMP_ROOT (parent of the per-node temp dir; default $TMPDIR or /tmp),
# SPIKESWEEP_RAY_START_ARGS (extra `ray start` flags, split on spaces), SPIKESWEEP_SETUP (a file of
# set-up lines sourced on worker nodes before Ray starts).
set -euo pipefail

if [[ ${1:-} != --dry-run && -n ${SPIKESWEEP_RAY_LOG_DIR:-} && -n ${SLURMD_NODENAME:-} ]]; then
    exec >>"${SPIKESWEEP_RAY_LOG_DIR}/ray-${SLURM_JOB_ID}-${SLURMD_NODENAME}.log" 2>&1
fi

die() { echo "ray_node.sh (${SLURMD_NODENAME:-?}): error: $*" >&2; exit 1; }

# The site's set-up lines (`slurm submit --setup FILE`), on the worker nodes; the batch script has
# already sourced them on the head node.
if [[ ${1:-} == worker && -n ${SPIKESWEEP_SETUP:-} ]]; then
    set +u
    # shellcheck disable=SC1090
    source "$SPIKESWEEP_SETUP" || die "the set-up file $SPIKESWEEP_SETUP returned an error"
    set -u
fi

dry_run=""
if [[ ${1:-} == --dry-run ]]; then
    dry_run=1
    shift
fi
role=${1:-}
python=${2:-}
[[ $role == head || $role == worker ]] || die "first argument must be 'head' or 'worker', got '${role}'"
[[ -x $python ]] || die "'${python}' is not an executable Python interpreter"
ray_bin="$(dirname "$python")/ray"
[[ -x $ray_bin ]] || die "no 'ray' command next to ${python} (is Ray installed in that environment?)"

node=${SLURMD_NODENAME:?ray_node.sh must run inside a Slurm job (SLURMD_NODENAME is unset)}
job=${SLURM_JOB_ID:?ray_node.sh must run inside a Slurm job (SLURM_JOB_ID is unset)}

# --- resources of this node, as Slurm allocated them ---------------------------------------------------
cpus=${SLURM_CPUS_ON_NODE:?SLURM_CPUS_ON_NODE is unset: cannot tell how many CPUs this job has here}
gpus=${SLURM_GPUS_ON_NODE:-}
if [[ -z $gpus && -n ${CUDA_VISIBLE_DEVICES:-} && ${CUDA_VISIBLE_DEVICES} != NoDevFiles ]]; then
    IFS=, read -ra visible <<<"$CUDA_VISIBLE_DEVICES"
    gpus=${#visible[@]}
fi
gpus=${gpus:-0}

memory_args=()
mem_mb=${SLURM_MEM_PER_NODE:-}
if [[ -z $mem_mb && -n ${SLURM_MEM_PER_CPU:-} ]]; then
    mem_mb=$((SLURM_MEM_PER_CPU * cpus))
fi
if [[ -n $mem_mb ]] && ((mem_mb >= 512)); then
    total=$((mem_mb * 1024 * 1024))
    object_store=$((total * 3 / 10))
    memory_args=(--object-store-memory="$object_store" --memory="$((total - object_store))")
fi

# --- a short per-job, per-node temp dir ------------------------------------------------------------------
tmp_root=${SPIKESWEEP_RAY_TMP_ROOT:-${TMPDIR:-/tmp}}
temp_dir="${tmp_root%/}/ray-${job}-${node}" # per node name: SLURM_NODEID counts within the srun step
if ((${#temp_dir} > 40)); then
    echo "ray_node.sh ($node): ${temp_dir} is too long for Ray's socket paths; using /tmp instead" >&2
    temp_dir="/tmp/ray-${job}-${node:0:20}"
fi
[[ -n $dry_run ]] || mkdir -p "$temp_dir" || die "cannot create Ray's temp dir ${temp_dir}"

if [[ ${RAY_AUTH_MODE:-} == token ]]; then
    [[ -r ${RAY_AUTH_TOKEN_PATH:-} ]] || die "RAY_AUTH_MODE=token but the token file '${RAY_AUTH_TOKEN_PATH:-}' is not readable here (is it on a filesystem every node mounts?)"
fi

args=(start --block
    --num-cpus="$cpus" --num-gpus="$gpus" "${memory_args[@]}"
    --temp-dir="$temp_dir"
    --labels="slurm-node=${node}"
    --min-worker-port=0 --max-worker-port=0
    --dashboard-agent-listen-port=0
    --disable-usage-stats)

case $role in
head)
    head_ip=${3:?head: HEAD_IP missing}
    port=${4:?head: PORT missing}
    dashboard_port=${5:?head: DASHBOARD_PORT missing}
    args+=(--head --node-ip-address="$head_ip" --port="$port"
        --include-dashboard=false --dashboard-host=127.0.0.1 --dashboard-port="$dashboard_port")
    ;;
worker)
    address=${3:?worker: HEAD_IP:PORT missing}
    args+=(--address="$address")
    ;;
esac

# shellcheck disable=SC2206  # extra flags are split on spaces on purpose
extra=(${SPIKESWEEP_RAY_START_ARGS:-})
if [[ -n $dry_run ]]; then
    printf '%s\n' "$ray_bin" "${args[@]}" "${extra[@]}"
    exit 0
fi
echo "ray_node.sh ($node): $role with ${cpus} CPU(s), ${gpus} GPU(s); temp dir ${temp_dir}" >&2
echo "ray_node.sh ($node): ${ray_bin} ${args[*]} ${extra[*]}" >&2
exec "$ray_bin" "${args[@]}" "${extra[@]}"
