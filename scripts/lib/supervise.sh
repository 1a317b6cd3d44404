# shellcheck shell=bash
# Starts the processes of one kappa job, prefixes their logs, and stops them together.
#
# Timely is fail-stop: when one process ends in failure the job is lost, so the others
# are stopped too (they also stop by themselves within about a second, because they
# lose their connection to it; the supervisor is the backstop). Sourced by
# local-cluster.sh, cluster.sh and netns.sh.
#
#   supervise_start INDEX LABEL CMD...   start process INDEX in the background
#   supervise_wait                       wait for all; 0, or 1 naming the first failure
#
# Process 0's stdout (the job's results) passes through unchanged; every other stream
# is prefixed with `[LABEL] ` line by line.

SUPERVISE_PIDS=()
SUPERVISE_LABELS=()
SUPERVISE_LIVE=()
# Called with INDEX to stop a process other than by signalling its local pid (ssh).
SUPERVISE_STOP_HOOK=""
# Seconds the others get to stop by themselves after a failure before TERM, then KILL.
SUPERVISE_GRACE=${KAPPA_STOP_GRACE:-3}
SUPERVISE_NAME=${SUPERVISE_NAME:-cluster}

supervise_prefix() {
    awk -v p="[$1] " '{ print p $0; fflush() }'
}

supervise_start() {
    local index=$1 label=$2
    shift 2
    if [[ $index == 0 ]]; then
        "$@" </dev/null 2> >(supervise_prefix "$label" >&2) &
    else
        "$@" </dev/null > >(supervise_prefix "$label") 2> >(supervise_prefix "$label" >&2) &
    fi
    SUPERVISE_PIDS[index]=$!
    SUPERVISE_LABELS[index]=$label
    SUPERVISE_LIVE[index]=1
}

supervise_describe() {
    local rc=$1
    if ((rc > 128)); then
        echo "was killed by SIG$(kill -l $((rc - 128)) 2>/dev/null || echo $((rc - 128)))"
    else
        echo "exited with code $rc"
    fi
}

supervise_stop_all() {
    local signal=$1 i
    for i in "${!SUPERVISE_PIDS[@]}"; do
        if [[ -n ${SUPERVISE_LIVE[i]:-} ]]; then
            if [[ -n $SUPERVISE_STOP_HOOK ]]; then
                "$SUPERVISE_STOP_HOOK" "$i" "$signal" || true
            fi
            kill "-$signal" "${SUPERVISE_PIDS[i]}" 2>/dev/null || true
        fi
    done
}

supervise_wait() {
    local i pid rc failed="" failed_how="" timer="" stage=""
    while ((${#SUPERVISE_LIVE[@]} > 0)); do
        local waiting=()
        for i in "${!SUPERVISE_LIVE[@]}"; do
            waiting+=("${SUPERVISE_PIDS[i]}")
        done
        # After a failure a timer joins the wait, so that the stop escalates on time.
        pid=""
        rc=0
        wait -n -p pid "${waiting[@]}" ${timer:+"$timer"} 2>/dev/null || rc=$?
        [[ -z $pid ]] && break
        if [[ $pid == "$timer" ]]; then
            if [[ $stage == term ]]; then
                echo "$SUPERVISE_NAME: stopping the remaining processes" >&2
                supervise_stop_all TERM
                sleep 2 &
                timer=$!
                stage="kill"
            else
                supervise_stop_all KILL
                timer=""
            fi
            continue
        fi
        for i in "${!SUPERVISE_LIVE[@]}"; do
            if [[ ${SUPERVISE_PIDS[i]} == "$pid" ]]; then
                unset 'SUPERVISE_LIVE[i]'
                if ((rc != 0)) && [[ -z $failed ]]; then
                    failed=$i
                    failed_how=$(supervise_describe "$rc")
                    echo "$SUPERVISE_NAME: process $i (${SUPERVISE_LABELS[i]}) $failed_how; the job is lost, stopping the others" >&2
                    sleep "$SUPERVISE_GRACE" &
                    timer=$!
                    stage="term"
                elif ((rc != 0)); then
                    echo "$SUPERVISE_NAME: process $i (${SUPERVISE_LABELS[i]}) $(supervise_describe "$rc")" >&2
                fi
            fi
        done
    done
    if [[ -n $timer ]]; then
        kill "$timer" 2>/dev/null || true
        wait "$timer" 2>/dev/null || true
    fi
    if [[ -n $failed ]]; then
        echo "$SUPERVISE_NAME: error: process $failed (${SUPERVISE_LABELS[failed]}) failed first: it $failed_how" >&2
        return 1
    fi
    return 0
}

# On interruption, stop every process started so far.
supervise_trap() {
    trap 'supervise_stop_all TERM; exit 130' INT TERM
}
