#!/bin/bash
# tuning-lab instance bootstrap. The stack renders this template at synth, replacing:
#   {{RUN_SETTINGS_PARAMETER}}  SSM parameter holding the run settings (docs/contracts.md section 1)
#   {{REGION}}                  the stack's region
#   {{RUNTIME_ARCHIVE_URI}}     s3:// URI of a zip of runtime/ (tests excluded), readable by the instance
#   {{STACK_NAME}}              the stack name
# It installs the host supervisor (runtime/tuning_runtime) and starts its systemd unit, which does
# the rest. Idempotent: running it again (cloud-init runs it once per instance; systemd starts the
# enabled unit on every boot) converges to the same files and the same running unit.
# If setup fails, the instance sets its group's capacity to 0 and shuts down (= terminates):
# a half-configured GPU instance must not bill. Before that it copies this log to the run's
# logs/ in S3 and sends one `failed` message, so the failure is neither silent nor lost with the
# instance.
# Tests set TUNING_LAB_ROOT to install into a scratch folder with fake aws/systemctl/shutdown.
set -euo pipefail
root="${TUNING_LAB_ROOT:-}"
mkdir -p "$root/var/log"
exec >>"$root/var/log/training-setup.log" 2>&1

region='{{REGION}}'
archive_uri='{{RUNTIME_ARCHIVE_URI}}'
runtime_dir="$root/opt/tuning-lab/runtime"
unit=tuning-supervisor.service

log() { echo "$(date -u +%Y-%m-%dT%H:%M:%SZ) $*"; }

# Best effort: the settings name the run, its output folder and the alerts topic.
report_setup_failure() {
  local instance_id=$1 line=$2 settings run_id output_uri topic log_uri
  settings=$(aws ssm get-parameter --region "$region" --name '{{RUN_SETTINGS_PARAMETER}}' \
    --query Parameter.Value --output text) || return 0
  read -r run_id output_uri topic < <(python3 -c 'import json, sys
s = json.load(sys.stdin)
print(s["runId"], s["outputUri"], s["topicArn"])' <<<"$settings") || return 0
  log_uri="$output_uri/logs/$instance_id/training-setup.log"
  aws s3 cp --only-show-errors --region "$region" "$root/var/log/training-setup.log" "$log_uri" ||
    log_uri="not copied (see the instance's console output)"
  aws sns publish --region "$region" --topic-arn "$topic" --subject "tuning-lab $run_id: failed" \
    --message-attributes "{\"runId\": {\"DataType\": \"String\", \"StringValue\": \"$run_id\"},
      \"status\": {\"DataType\": \"String\", \"StringValue\": \"failed\"}}" \
    --message "Run: $run_id
Status: failed
Reason: setup-failed: the instance's setup (user-data) failed at line $line
Instance: $instance_id
Duration: -
Estimated cost: -
Model: -
Logs: $log_uri

Next step:
No training started: the instance could not install the host supervisor. It set its group's
capacity to 0 and terminated. Read the setup log, fix the cause (see docs/troubleshooting.md),
then deploy again with -c createInstance=true; the run resumes from its last checkpoint, if any.
" >/dev/null || true
}

give_up() {
  log "setup failed (line $1): setting the group's capacity to 0 and shutting down"
  local token instance_id group
  token=$(curl -sf -X PUT -H 'X-aws-ec2-metadata-token-ttl-seconds: 60' \
    "${AWS_EC2_METADATA_SERVICE_ENDPOINT:-http://169.254.169.254}/latest/api/token") || true
  instance_id=$(curl -sf -H "X-aws-ec2-metadata-token: $token" \
    "${AWS_EC2_METADATA_SERVICE_ENDPOINT:-http://169.254.169.254}/latest/meta-data/instance-id") ||
    instance_id=unknown-instance
  report_setup_failure "$instance_id" "$1"
  group=$(aws autoscaling describe-auto-scaling-instances --region "$region" \
    --instance-ids "$instance_id" --query 'AutoScalingInstances[0].AutoScalingGroupName' \
    --output text) || true
  if [[ -n "$group" && "$group" != "None" ]]; then
    aws autoscaling set-desired-capacity --region "$region" --auto-scaling-group-name "$group" \
      --desired-capacity 0 --no-honor-cooldown || true
  fi
  shutdown -h now
}
trap 'give_up $LINENO' ERR

retry() {
  local attempt
  for attempt in 1 2 3 4 5; do
    "$@" && return 0
    log "attempt $attempt of: $* failed; retrying in $((attempt * 5)) s"
    sleep $((attempt * 5))
  done
  return 1
}

log "tuning-lab setup for stack {{STACK_NAME}}"
work=$(mktemp -d)
retry aws s3 cp --only-show-errors --region "$region" "$archive_uri" "$work/runtime.zip"
python3 -m zipfile -e "$work/runtime.zip" "$work/runtime"
# The system python3 must be able to run it (3.10 on the Base OSS DLAMI) before it is installed.
PYTHONPATH="$work/runtime" python3 -m tuning_runtime --help >/dev/null
mkdir -p "$(dirname "$runtime_dir")"
rm -rf "$runtime_dir.old"
if [[ -d "$runtime_dir" ]]; then mv "$runtime_dir" "$runtime_dir.old"; fi
mv "$work/runtime" "$runtime_dir"
rm -rf "$runtime_dir.old" "$work"

# Users attach to the run with `sudo tmux attach -t training`; install tmux if an AMI lacks it.
if ! command -v tmux >/dev/null; then
  { command -v dnf && dnf -y -q install tmux; } || { command -v yum && yum -y -q install tmux; } ||
    { command -v apt-get && apt-get -y -qq install tmux; } ||
    log "tmux could not be installed: follow /var/log/training.log instead"
fi

mkdir -p "$root/etc/tuning-lab" "$root/etc/systemd/system"
cat >"$root/etc/tuning-lab/runtime.env" <<EOF
TUNING_RUN_SETTINGS_PARAMETER={{RUN_SETTINGS_PARAMETER}}
TUNING_STACK_NAME={{STACK_NAME}}
AWS_REGION=$region
AWS_DEFAULT_REGION=$region
AWS_STS_REGIONAL_ENDPOINTS=regional
EOF
install -m 0644 "$runtime_dir/systemd/$unit" "$root/etc/systemd/system/$unit"
systemctl daemon-reload
systemctl enable "$unit"
# start, not restart: a second run of this script must not interrupt a training run.
# --no-block: this script runs inside cloud-final.service; waiting for the unit could deadlock.
systemctl start --no-block "$unit"
log "supervisor started: journalctl -u $unit, /var/log/training.log, sudo tmux attach -t training"
