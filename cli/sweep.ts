/**
 * What `tuning-lab sweep` looks for: everything of this stack that may still bill with no run to
 * show for it, each with its cost per hour and what `--delete` does about it.
 *
 * - instances tagged `tuning-lab:stack=<stack>` that are outside the group (a stray launch, or a
 *   debug hold past its time), carry a run in no ledger, or outlive their run's end;
 * - unattached EBS volumes carrying the stack's tag;
 * - the group's desired capacity above 0 while no run is running;
 * - incomplete multipart uploads in the stack's buckets (their parts bill as storage).
 *
 * Things that are about to go by themselves are given time before they count: an instance that
 * booted less than {@link BOOT_GRACE_MINUTES} ago (its supervisor writes the ledger first), a run
 * that ended less than {@link END_GRACE_MINUTES} ago (its instance is shutting down), an upload
 * younger than {@link UPLOAD_GRACE_HOURS} (a checkpoint being written).
 */
import {
  DescribeAutoScalingGroupsCommand,
  SetDesiredCapacityCommand,
  UpdateAutoScalingGroupCommand,
} from '@aws-sdk/client-auto-scaling';
import {
  DeleteVolumeCommand,
  DescribeInstancesCommand,
  DescribeVolumesCommand,
  TerminateInstancesCommand,
  type Instance,
} from '@aws-sdk/client-ec2';
import {
  AbortMultipartUploadCommand,
  ListMultipartUploadsCommand,
  ListPartsCommand,
} from '@aws-sdk/client-s3';
import { GetParameterCommand } from '@aws-sdk/client-ssm';
import {
  AUTOSCALING_GROUP_TAG,
  FINAL_RUN_STATUSES,
  ledgerKey,
  runSettingsParameterName,
  TAG_KEYS,
  type Ledger,
} from '../lib/contract';
import { onDemandPrice } from '../lib/pricing';
import type { CliContext } from './context';
import type { RunStore } from './run-store';

export const BOOT_GRACE_MINUTES = 15;
export const END_GRACE_MINUTES = 10;
export const UPLOAD_GRACE_HOURS = 24;
/** The longest debug hold the stack allows (lib/config.ts debugHoldMinutes). */
export const MAX_DEBUG_HOLD_MINUTES = 240;
/** gp3 storage, USD per GiB-month (us-east-1); S3 Standard, USD per GB-month. */
export const GP3_USD_PER_GIB_MONTH = 0.08;
export const S3_USD_PER_GB_MONTH = 0.023;
const HOURS_PER_MONTH = 730;

export type LeakKind = 'instance' | 'volume' | 'capacity' | 'upload';

export interface Leak {
  readonly kind: LeakKind;
  readonly id: string;
  readonly why: string;
  /** USD per hour it bills (an estimate: on-demand price, list storage price); null: unknown. */
  readonly usdPerHour: number | null;
  /** What `--delete` does. */
  readonly action: string;
  /** For the delete step. */
  readonly target: Record<string, string>;
}

/** Something that bills on purpose for a while yet (a debug hold within its time). */
export interface Kept {
  readonly kind: LeakKind;
  readonly id: string;
  readonly why: string;
}

export interface SweepFindings {
  readonly leaks: Leak[];
  readonly kept: Kept[];
}

const minutesSince = (iso: string | Date | undefined, now: Date) =>
  iso === undefined ? Infinity : (now.getTime() - new Date(iso).getTime()) / 60_000;

function tag(instance: Instance, key: string): string | undefined {
  return instance.Tags?.find((t) => t.Key === key)?.Value;
}

export async function findLeaks(ctx: CliContext, store: RunStore): Promise<SweepFindings> {
  const now = ctx.now();
  const region = await ctx.region();
  const ledgers = new Map<string, Promise<Ledger | undefined>>();
  const ledgerOf = (runId: string) => {
    if (!ledgers.has(runId)) ledgers.set(runId, store.readJson<Ledger>(ledgerKey(runId)));
    return ledgers.get(runId) as Promise<Ledger | undefined>;
  };
  const leaks: Leak[] = [];
  const kept: Kept[] = [];
  const groupName = await ctx.optionalOutput('groupName');
  const holdMinutes = await debugHoldMinutes(ctx);

  // Instances of the stack.
  const found = await ctx.ec2.send(
    new DescribeInstancesCommand({
      Filters: [
        { Name: `tag:${TAG_KEYS.stack}`, Values: [ctx.stackName] },
        { Name: 'instance-state-name', Values: ['pending', 'running', 'stopping', 'stopped'] },
      ],
    }),
  );
  const instances = (found.Reservations ?? []).flatMap((r) => r.Instances ?? []);
  for (const instance of instances) {
    const id = instance.InstanceId as string;
    const type = instance.InstanceType ?? '?';
    const spot = instance.InstanceLifecycle === 'spot';
    const price = onDemandPrice(type, region)?.usdPerHour ?? null;
    const stopped = instance.State?.Name === 'stopped';
    const leak = (why: string) =>
      leaks.push({
        kind: 'instance',
        id,
        why: `${type}${spot ? ' spot' : ''}: ${why}`,
        // A stopped instance bills its volumes only (listed with the price of the volume).
        usdPerHour: stopped ? 0 : price,
        action: 'terminate',
        target: { instanceId: id },
      });
    const runId = tag(instance, TAG_KEYS.runId);
    const inGroup = tag(instance, AUTOSCALING_GROUP_TAG) === groupName && groupName !== undefined;
    if (minutesSince(instance.LaunchTime, now) < BOOT_GRACE_MINUTES) continue;
    const ledger = runId ? await ledgerOf(runId) : undefined;
    if (!runId || !ledger) {
      leak(runId ? `run ${runId} has no ledger` : 'no run-id tag');
      continue;
    }
    const ended = (FINAL_RUN_STATUSES as readonly string[]).includes(ledger.status);
    const endedMinutes = minutesSince(ledger.endedAt ?? undefined, now);
    if (!inGroup) {
      const holdLeft = holdMinutes - endedMinutes;
      if (ledger.status === 'failed' && holdLeft > 0) {
        kept.push({
          kind: 'instance',
          id,
          why: `debug hold of failed run ${runId}: ${Math.ceil(holdLeft)} min left`,
        });
      } else if (ledger.status === 'failed') {
        leak(`debug hold of run ${runId} past its ${holdMinutes} min`);
      } else {
        leak(`outside the group (run ${runId} is ${ledger.status})`);
      }
      continue;
    }
    if (ended && endedMinutes >= END_GRACE_MINUTES) {
      leak(`run ${runId} ended (${ledger.status}) ${Math.round(endedMinutes)} min ago`);
    }
  }

  // Unattached volumes of the stack.
  const volumes = await ctx.ec2.send(
    new DescribeVolumesCommand({
      Filters: [
        { Name: 'status', Values: ['available'] },
        { Name: `tag:${TAG_KEYS.stack}`, Values: [ctx.stackName] },
      ],
    }),
  );
  for (const volume of volumes.Volumes ?? []) {
    const gib = volume.Size ?? 0;
    leaks.push({
      kind: 'volume',
      id: volume.VolumeId as string,
      why: `${gib} GiB ${volume.VolumeType ?? ''} attached to nothing`.replace('  ', ' '),
      usdPerHour: (gib * GP3_USD_PER_GIB_MONTH) / HOURS_PER_MONTH,
      action: 'delete volume',
      target: { volumeId: volume.VolumeId as string },
    });
  }

  // The group's capacity with no run running.
  if (groupName) {
    const groups = await ctx.autoscaling.send(
      new DescribeAutoScalingGroupsCommand({ AutoScalingGroupNames: [groupName] }),
    );
    const group = groups.AutoScalingGroups?.[0];
    const desired = group?.DesiredCapacity ?? 0;
    if (group && desired > 0) {
      const runId = await ctx.optionalOutput('runId');
      const ledger = runId ? await ledgerOf(runId) : undefined;
      const ended = ledger && (FINAL_RUN_STATUSES as readonly string[]).includes(ledger.status);
      const why = !runId
        ? 'no run is configured'
        : ended && minutesSince(ledger.endedAt ?? undefined, now) >= END_GRACE_MINUTES
          ? `run ${runId} ended (${ledger.status})`
          : undefined;
      if (why) {
        const types =
          group.MixedInstancesPolicy?.LaunchTemplate?.Overrides?.map((o) => o.InstanceType) ?? [];
        const running = (group.Instances ?? []).length > 0;
        const next = types[0] ? (onDemandPrice(types[0], region)?.usdPerHour ?? null) : null;
        leaks.push({
          kind: 'capacity',
          id: groupName,
          why: `desired capacity ${desired} but ${why}: it keeps (re)launching GPU instances`,
          // Its instances are listed above; with none yet, what it launches next bills this.
          usdPerHour: running ? 0 : next,
          action: 'set capacity 0',
          target: { groupName },
        });
      }
    }
  }

  // Incomplete multipart uploads in the stack's buckets.
  const buckets = [store.bucket, await ctx.optionalOutput('dataBucket')].filter(
    (b): b is string => b !== undefined,
  );
  for (const bucket of buckets) {
    const uploads = await ctx.s3.send(new ListMultipartUploadsCommand({ Bucket: bucket }));
    for (const upload of uploads.Uploads ?? []) {
      const ageHours = minutesSince(upload.Initiated, now) / 60;
      if (ageHours < UPLOAD_GRACE_HOURS) continue;
      const parts = await ctx.s3.send(
        new ListPartsCommand({ Bucket: bucket, Key: upload.Key, UploadId: upload.UploadId }),
      );
      const bytes = (parts.Parts ?? []).reduce((sum, p) => sum + (p.Size ?? 0), 0);
      leaks.push({
        kind: 'upload',
        id: `s3://${bucket}/${upload.Key}`,
        why: `incomplete multipart upload, ${(parts.Parts ?? []).length} parts (${bytes} bytes), started ${Math.floor(ageHours)} h ago`,
        usdPerHour: ((bytes / 1e9) * S3_USD_PER_GB_MONTH) / HOURS_PER_MONTH,
        action: 'abort upload',
        target: { bucket, key: upload.Key as string, uploadId: upload.UploadId as string },
      });
    }
  }
  return { leaks, kept };
}

/** The stack's debugHoldMinutes (run settings); the longest allowed when unreadable. */
async function debugHoldMinutes(ctx: CliContext): Promise<number> {
  try {
    const found = await ctx.ssm.send(
      new GetParameterCommand({ Name: runSettingsParameterName(ctx.stackName) }),
    );
    const value = JSON.parse(found.Parameter?.Value ?? '{}').debugHoldMinutes;
    return typeof value === 'number' ? value : MAX_DEBUG_HOLD_MINUTES;
  } catch {
    return MAX_DEBUG_HOLD_MINUTES;
  }
}

/** Remove one leak; the text says what was done. */
export async function removeLeak(ctx: CliContext, leak: Leak): Promise<string> {
  const t = leak.target;
  switch (leak.kind) {
    case 'instance':
      await ctx.ec2.send(new TerminateInstancesCommand({ InstanceIds: [t.instanceId] }));
      return `terminated ${t.instanceId}`;
    case 'volume':
      await ctx.ec2.send(new DeleteVolumeCommand({ VolumeId: t.volumeId }));
      return `deleted ${t.volumeId}`;
    case 'capacity':
      await ctx.autoscaling.send(
        new UpdateAutoScalingGroupCommand({ AutoScalingGroupName: t.groupName, MinSize: 0 }),
      );
      await ctx.autoscaling.send(
        new SetDesiredCapacityCommand({ AutoScalingGroupName: t.groupName, DesiredCapacity: 0 }),
      );
      return `set ${t.groupName} to capacity 0 (a deploy with createInstance=false keeps it there)`;
    case 'upload':
      await ctx.s3.send(
        new AbortMultipartUploadCommand({ Bucket: t.bucket, Key: t.key, UploadId: t.uploadId }),
      );
      return `aborted the upload of s3://${t.bucket}/${t.key}`;
  }
}
