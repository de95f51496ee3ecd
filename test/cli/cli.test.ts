/**
 * `npx tuning-lab` against the emulator through the real SDK v3 clients: a stack with a
 * finished run, a running run with published progress, an interrupted-and-resumed run and a
 * failed run, written by the instance runtime's own code (testing/run_fixtures.py).
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SetDesiredCapacityCommand } from '@aws-sdk/client-auto-scaling';
import { DeleteObjectCommand, PutObjectCommand } from '@aws-sdk/client-s3';
import {
  arrangeStack,
  cli,
  clients,
  motoEnv,
  ROOT,
  startMoto,
  stopMoto,
  type Moto,
  type TestStack,
} from './support';

let moto: Moto;
let stack: TestStack;
let url: string;

beforeAll(async () => {
  moto = await startMoto();
  url = moto.url;
  stack = await arrangeStack(url, 'CliStack', { runId: 'run-live0001' });
}, 180_000);

afterAll(() => stopMoto(moto));

const run = (argv: string[]) => cli(url, [...argv, '--stack', stack.name]);

describe('runs', () => {
  test('lists every run newest first with status, step, loss and whether a model exists', async () => {
    const result = await run(['runs']);

    expect(result.code).toBe(0);
    const lines = result.stdout.trimEnd().split('\n');
    expect(lines[0]).toMatch(
      /^RUN\s+STATUS\s+STARTED\s+DURATION\s+INSTANCE\s+COST\s+STEP\s+LOSS\s+MODEL\s+ALIAS$/,
    );
    expect(lines.slice(1).map((l) => l.split(/\s+/)[0])).toEqual([
      'run-live0001',
      'run-fail0001',
      'run-resu0001',
      'run-fin00001',
    ]);
    expect(lines[1]).toMatch(/running .*g5\.xlarge spot .* 40\/60 .* no/);
    expect(lines[2]).toMatch(/failed \(trainer-failed\).*g5\.xlarge on-demand.* 12\/60 .* no/);
    expect(lines[3]).toMatch(/completed .* 60\/60 .* yes/);
    expect(result.stdout).not.toContain('\u001b['); // no colours off a terminal
  });

  test('--json gives the same runs for scripts', async () => {
    const result = await run(['runs', '--json']);

    const parsed = JSON.parse(result.stdout);
    const finished = parsed.runs.find((r: { runId: string }) => r.runId === 'run-fin00001');
    expect(finished).toMatchObject({
      status: 'completed',
      reason: 'completed',
      instanceType: 'g5.xlarge',
      market: 'spot',
      step: 60,
      maxSteps: 60,
      finalModel: true,
    });
    expect(finished.loss).toBeCloseTo(2.5 * 0.97 ** 60, 3);
    expect(finished.estimatedCostUsd).toBeGreaterThan(0);
  });

  test('show adds model, data, digests, eval loss and where the model is', async () => {
    const result = await run(['runs', 'show', 'run-resu0001', '--json']);

    expect(result.code).toBe(0);
    const shown = JSON.parse(result.stdout);
    expect(shown).toMatchObject({
      runId: 'run-resu0001',
      status: 'completed',
      baseModel: 'builtin:tiny-llama',
      method: 'lora',
      data: { train: 'datasets/sample/train.jsonl', eval: 'datasets/sample/eval.jsonl' },
      imageUri: expect.stringMatching(/@sha256:[0-9a-f]{64}$/),
      configDigest: expect.stringMatching(/^sha256:[0-9a-f]{64}$/),
      attempts: 2,
      interruptions: 1,
      evalStep: 60,
      model: { uri: `s3://${stack.bucket}/runs/run-resu0001/final/`, complete: true, files: 3 },
    });
  });

  test('tag names a run that pull accepts; tagging again moves the name; untag removes it', async () => {
    expect((await run(['runs', 'tag', 'run-fin00001', 'prod'])).stdout).toBe(
      'prod -> run-fin00001\n',
    );
    expect((await run(['runs', 'tag', 'run-resu0001', 'prod'])).stdout).toBe(
      'prod -> run-resu0001 (was run-fin00001)\n',
    );
    expect((await run(['runs'])).stdout).toMatch(/run-resu0001 .* prod\n/);

    const dir = mkdtempSync(join(tmpdir(), 'pull-alias-'));
    const pulled = await run(['pull', 'prod', dir, '--json']);
    expect(pulled.code).toBe(0);
    expect(JSON.parse(pulled.stdout)).toMatchObject({ runId: 'run-resu0001', alias: 'prod' });

    expect((await run(['runs', 'untag', 'prod'])).stdout).toBe('removed prod (was run-resu0001)\n');
    const again = await run(['runs', 'untag', 'prod']);
    expect(again.code).toBe(1);
    expect(again.stderr).toBe(
      'tuning-lab runs: no alias named prod (npx tuning-lab runs lists them)\n',
    );
  });

  test('a bad action or alias name is exit 2 with one line naming it', async () => {
    const action = await run(['runs', 'delete', 'x']);
    expect(action.code).toBe(2);
    expect(action.stderr).toMatch(
      /^tuning-lab runs: action: 'delete' is not allowed; use one of show, tag, untag/,
    );
    const name = await run(['runs', 'tag', 'run-fin00001', 'Prod!']);
    expect(name.code).toBe(2);
    expect(name.stderr.split('\n')).toHaveLength(2);
    expect(name.stderr).toMatch(/^tuning-lab runs: name: 'Prod!' is not allowed/);
  });
});

describe('status', () => {
  test("defaults to the stack's current run: ledger, group, progress, ETA and cost so far", async () => {
    const result = await run(['status', '--json']);

    expect(result.code).toBe(0);
    const status = JSON.parse(result.stdout);
    expect(status).toMatchObject({
      runId: 'run-live0001',
      current: true,
      status: 'running',
      instance: { instanceType: 'g5.xlarge', market: 'spot' },
      group: { name: stack.groupName, desired: 1, max: 1 },
      progress: { step: 40, maxSteps: 60, tokensPerSecond: 1800 },
    });
    expect(status.group.instances).toHaveLength(1);
    expect(status.progress.loss).toBeCloseTo(2.5 * 0.97 ** 40, 3);
    // 39 steps in 78 s since the attempt's first step: 20 more steps take 40 s.
    expect(status.progress.etaSeconds).toBeCloseTo(40, 0);
    // 30 minutes at 1.006 USD an hour
    expect(status.costSoFarUsd).toBeCloseTo(0.5, 1);
  });

  test('prints one screen for people', async () => {
    const result = await run(['status']);

    expect(result.stdout).toMatch(/^run\s+run-live0001 \(current run of the stack\)$/m);
    expect(result.stdout).toMatch(/^group\s+gpu-clistack: desired 1 \(min 0, max 1\)$/m);
    expect(result.stdout).toMatch(/^step\s+40\/60 \(66 %\)$/m);
    expect(result.stdout).toMatch(/^ETA\s+40 s$/m);
    expect(result.stdout).toMatch(/^cost so far\s+\$0\.5\d \(estimate\)$/m);
    expect(result.stdout).toMatch(
      /^shell\s+aws ssm start-session --region us-east-1 --target i-[0-9a-f]+$/m,
    );
  });

  test('with no instance in service it says so instead of an SSM command without a target', async () => {
    await clients(url).autoscaling.send(
      new SetDesiredCapacityCommand({ AutoScalingGroupName: stack.groupName, DesiredCapacity: 0 }),
    );

    const json = JSON.parse((await run(['status', '--json'])).stdout);
    const text = (await run(['status'])).stdout;

    expect(json.sessionCommand).toBeNull();
    expect(text).toMatch(
      /^shell\s+no instance in service \(run running, group desired 0\): nothing to open a shell on$/m,
    );
    expect(text).not.toContain('--target');
  });

  test('a failed run shows its reason and last log lines', async () => {
    const result = await run(['status', 'run-fail0001']);

    expect(result.stdout).toMatch(/^status\s+failed \(trainer-failed\)$/m);
    expect(result.stdout).toContain('  RuntimeError: CUDA error: an illegal memory access');
  });

  test('--plot writes the loss curve as SVG (training and eval) or the metrics as CSV', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'plot-'));
    const svg = await run(['status', 'run-fin00001', '--plot', join(dir, 'loss.svg')]);
    const csv = await run(['status', 'run-fin00001', '--plot', join(dir, 'loss.csv')]);

    expect([svg.code, csv.code]).toEqual([0, 0]);
    const drawn = readFileSync(join(dir, 'loss.svg'), 'utf8');
    expect(drawn.match(/<polyline /g)).toHaveLength(2);
    expect(drawn).toContain('eval loss');
    const rows = readFileSync(join(dir, 'loss.csv'), 'utf8').trim().split('\n');
    expect(rows[0]).toBe('step,at,loss,eval_loss,learning_rate,tokens_per_second');
    expect(rows.slice(1).map((r) => Number(r.split(',')[0]))).toEqual([10, 20, 30, 40, 50, 60]);
  });

  test('--plot to a PNG is exit 2 saying what to use instead', async () => {
    const result = await run(['status', '--plot', 'loss.png']);

    expect(result.code).toBe(2);
    expect(result.stderr).toMatch(
      /^tuning-lab status: --plot: 'loss.png' is not allowed; use a \.svg or \.csv file/,
    );
  });
});

describe('logs', () => {
  test('a live run: the trainer streams from CloudWatch, without metric lines', async () => {
    const result = await run(['logs']);

    expect(result.code).toBe(0);
    expect(result.stdout).toBe(
      'loading builtin:tiny-llama\nstep 40/60 loss 0.7380 lr 6.67e-05 tok/s 1800\n',
    );
    expect(result.stderr).toContain(`CloudWatch Logs ${stack.logGroup}`);
  });

  test('an ended run: the S3 copies of every instance, in the order the run used them', async () => {
    const result = await run(['logs', 'run-resu0001', '--json']);

    const { lines, source } = JSON.parse(result.stdout);
    const [first, second] = stack.fixtures.runs.resumed.instances;
    expect(source.split(', ')).toEqual([
      `s3://${stack.bucket}/runs/run-resu0001/logs/${first}/training.log`,
      `s3://${stack.bucket}/runs/run-resu0001/logs/${second}/training.log`,
    ]);
    expect(lines.filter((l: string) => l.startsWith('[tuning-supervisor]'))).toHaveLength(2);
  });
});

describe('messages', () => {
  test('every message of the resumed run, in the order sent', async () => {
    const result = await run(['messages', 'run-resu0001', '--json']);

    const { messages } = JSON.parse(result.stdout);
    expect(messages.map((m: { status: string }) => m.status)).toEqual([
      'started',
      'interrupted',
      'resumed',
      'completed',
    ]);
    expect(messages[1]).toMatchObject({
      reason: 'spot-interruption',
      subject: 'tuning-lab run-resu0001: interrupted',
    });
    expect(messages[1].body).toContain('Status: interrupted\nReason: spot-interruption\n');
  });

  test('as text: each message as the email reads', async () => {
    const result = await run(['messages', 'run-fail0001']);

    expect(result.stdout).toMatch(
      /^== 2026-11-30 12:00Z {2}tuning-lab run-fail0001: started {2}\(from i-0+4\)$/m,
    );
    expect(result.stdout).toContain('Status: failed\nReason: trainer-failed\n');
    expect(result.stdout).toContain('  RuntimeError: CUDA error: an illegal memory access');
  });
});

describe('pull', () => {
  test('downloads the final model verified against the manifest, with metadata beside it', async () => {
    const dir = join(mkdtempSync(join(tmpdir(), 'pull-')), 'model');
    const result = await run(['pull', 'run-fin00001', dir]);

    expect(result.code).toBe(0);
    expect(result.stdout).toMatch(
      /final model of run-fin00001 \(step 60\) -> .*: 3 files, .* sha256 verified/,
    );
    for (const file of stack.fixtures.runs.finished.finalFiles) {
      expect(readFileSync(join(dir, file.path)).length).toBe(file.size);
    }
    const metadata = JSON.parse(readFileSync(join(dir, 'tuning-lab.json'), 'utf8'));
    expect(metadata).toMatchObject({
      runId: 'run-fin00001',
      kind: 'final',
      step: 60,
      baseModel: 'builtin:tiny-llama',
      method: 'lora',
      source: `s3://${stack.bucket}/runs/run-fin00001/final/`,
      metrics: { step: 60, maxSteps: 60 },
      config: { training: { max_steps: 60 } },
    });

    const again = await run(['pull', 'run-fin00001', dir]);
    expect(again.stdout).toContain('(3 already there)');
  });

  test('a checkpoint by its step', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'pull-ckpt-'));
    const result = await run(['pull', 'run-resu0001', dir, '--checkpoint', '30', '--json']);

    expect(result.code).toBe(0);
    expect(JSON.parse(result.stdout)).toMatchObject({ kind: 'checkpoint', step: 30, files: 3 });
  });

  test('refuses a tampered file and leaves nothing unverified behind', async () => {
    const { s3 } = clients(url);
    const [file] = stack.fixtures.runs.finished.finalFiles.filter(
      (f) => f.path === 'adapter_model.safetensors',
    );
    const key = `runs/run-fin00001/final/${file.path}`;
    await s3.send(
      new PutObjectCommand({ Bucket: stack.bucket, Key: key, Body: Buffer.alloc(file.size, 7) }),
    );
    const dir = mkdtempSync(join(tmpdir(), 'pull-tampered-'));

    const result = await run(['pull', 'run-fin00001', dir]);

    expect(result.code).toBe(1);
    expect(result.stderr).toMatch(
      /^tuning-lab pull: refusing the final model of run-fin00001: 1 file\(s\) do not match .*adapter_model\.safetensors: sha256 /,
    );
    expect(existsSync(join(dir, file.path))).toBe(false);
    expect(
      readdirSync(dir).filter((f) => f.endsWith('.partial') || f === 'tuning-lab.json'),
    ).toEqual([]);
  });

  test('an incomplete model (a file missing) is an error, not an empty success', async () => {
    const { s3 } = clients(url);
    await s3.send(
      new DeleteObjectCommand({
        Bucket: stack.bucket,
        Key: 'runs/run-resu0001/final/tokenizer/tokenizer.json',
      }),
    );
    const result = await run([
      'pull',
      'run-resu0001',
      mkdtempSync(join(tmpdir(), 'pull-incomplete-')),
    ]);

    expect(result.code).toBe(1);
    expect(result.stderr).toMatch(
      /the final model of run-resu0001 is incomplete: 1 of 3 file\(s\) missing or of the wrong size .* tokenizer\/tokenizer\.json \(manifest \d+ bytes, S3 missing\)/,
    );
  });

  test('a run without a final model is an error naming its state', async () => {
    const result = await run(['pull', 'run-fail0001', mkdtempSync(join(tmpdir(), 'pull-none-'))]);

    expect(result.code).toBe(1);
    expect(result.stderr).toMatch(
      /run run-fail0001 has no complete final model: .*final\/ has no manifest\.json \(run status failed \(trainer-failed\)/,
    );
  });
});

describe('the command line', () => {
  test('an unknown option is exit 2 naming it and the allowed ones', async () => {
    const result = await run(['status', '--follow']);

    expect(result.code).toBe(2);
    expect(result.stderr).toBe(
      'tuning-lab status: --follow: unknown option; allowed: --stack, --region, --profile, --json, --help, --watch, --interval, --plot\n',
    );
  });

  test('a stack that does not exist is exit 1 saying how to deploy it', async () => {
    const result = await cli(url, ['runs', '--stack', 'NoSuchStack']);

    expect(result.code).toBe(1);
    expect(result.stderr).toBe(
      'tuning-lab runs: stack NoSuchStack does not exist in us-east-1: deploy it (npx cdk deploy NoSuchStack), or name another with --stack or --region\n',
    );
  });

  test('npx tuning-lab runs the package bin with the AWS CLI environment', () => {
    const result = spawnSync('npx', ['tuning-lab', 'runs', '--stack', stack.name, '--json'], {
      cwd: ROOT,
      encoding: 'utf8',
      env: { ...process.env, ...motoEnv(url), AWS_REGION: '', AWS_DEFAULT_REGION: 'us-east-1' },
    });

    expect(result.status).toBe(0);
    expect(JSON.parse(result.stdout).runs).toHaveLength(4);
  });
});
