import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { UserInputError } from '../lib/errors';
import {
  canonicalJson,
  defaultRunId,
  loadRunConfig,
  MAX_RUN_CONFIG_BYTES,
} from '../lib/run-config';
import { ROOT } from './support/synth';

const dir = mkdtempSync(join(tmpdir(), 'run-config-'));

function configFile(name: string, yaml: string): string {
  const path = join(dir, name);
  writeFileSync(path, yaml);
  return path;
}

function errorOf(path: string, schemaPath?: string): string {
  try {
    loadRunConfig(path, { cwd: ROOT, schemaPath });
  } catch (error) {
    expect(error).toBeInstanceOf(UserInputError);
    return (error as Error).message;
  }
  throw new Error('expected a UserInputError');
}

const VALID = `model:
  base_model: builtin:tiny-llama
data:
  train: datasets/sample/train.jsonl
output:
  uri: s3://bucket/runs/x
`;

describe('loading a run config', () => {
  test('the example configs in configs/ pass the trainer schema', () => {
    for (const name of ['tiny-llama-lora', 'qwen2.5-7b-lora', 'qwen2.5-7b-qlora']) {
      const config = loadRunConfig(`configs/${name}.yaml`, { cwd: ROOT });
      expect(config).toHaveProperty('model.base_model');
    }
  });

  test('a missing file names the path it looked at', () => {
    expect(errorOf('configs/nope.yaml')).toBe(
      `Invalid setting runConfig=configs/nope.yaml: file not found (looked at ${join(ROOT, 'configs/nope.yaml')}).`,
    );
  });

  test('broken YAML names the line', () => {
    const path = configFile('broken.yaml', 'model:\n  base_model: [unclosed\n');
    expect(errorOf(path)).toMatch(
      /^Invalid setting runConfig=.*broken\.yaml: not valid YAML at line \d+: /,
    );
  });

  test('a YAML list instead of a mapping is rejected', () => {
    const path = configFile('list.yaml', '- model\n- data\n');
    expect(errorOf(path)).toContain('must be a YAML mapping with the sections model, lora, data');
  });
});

describe('inputs that must never reach the run settings', () => {
  const NO_SCHEMA = join(dir, 'no-schema.json');

  test('a directory is not a file', () => {
    const folder = join(dir, 'configs-folder');
    mkdirSync(folder);
    expect(errorOf(folder)).toBe(
      `Invalid setting runConfig=${folder}: not a file (${folder}); give the path of the YAML file.`,
    );
  });

  test('a YAML alias bomb fails in one line instead of exhausting memory', () => {
    // Each level repeats the previous one 9 times: 9^8 strings if every alias were expanded.
    const levels = ['a', 'b', 'c', 'd', 'e', 'f', 'g', 'h'];
    const yaml = levels
      .map((name, i) =>
        i === 0
          ? `${name}: &${name} [x, x, x, x, x, x, x, x, x]`
          : `${name}: &${name} [${Array(9)
              .fill(`*${levels[i - 1]}`)
              .join(', ')}]`,
      )
      .join('\n');
    const path = configFile('bomb.yaml', `${yaml}\n`);
    expect(errorOf(path)).toBe(
      `Invalid setting runConfig=${path}: too many YAML aliases (*name) expanded; write the ` +
        'values out instead.',
    );
  });

  test('a config over 6144 bytes as JSON is refused with its size', () => {
    // {"pad":"x...x"}: 10 bytes of JSON around the value.
    const path = configFile('large.yaml', `pad: ${'x'.repeat(6200)}\n`);
    expect(MAX_RUN_CONFIG_BYTES).toBe(6144);
    expect(errorOf(path, NO_SCHEMA)).toBe(
      `Invalid setting runConfig=${path}: 6210 bytes as JSON, over the 6144 a run config may ` +
        'have (it travels in an SSM parameter of at most 8 KB); remove what repeats a default.',
    );
  });

  test('a config of exactly 6144 bytes as JSON is accepted', () => {
    const path = configFile('just-fits.yaml', `pad: ${'x'.repeat(6134)}\n`);
    expect(loadRunConfig(path, { cwd: ROOT, schemaPath: NO_SCHEMA })).toEqual({
      pad: 'x'.repeat(6134),
    });
  });

  test('YAML comments and indentation do not count toward the size', () => {
    const comment = `# ${'c'.repeat(7000)}\n`;
    const path = configFile('commented.yaml', `${comment}${VALID}`);
    expect(() => loadRunConfig(path, { cwd: ROOT })).not.toThrow();
  });

  test('a CloudFormation dynamic reference in a nested string is refused, naming the field', () => {
    const path = configFile(
      'resolve.yaml',
      VALID.replace(
        'train: datasets/sample/train.jsonl',
        "train: '{{resolve:ssm:/prod/dataset-path}}'",
      ),
    );
    expect(errorOf(path)).toBe(
      `Invalid setting runConfig=${path}: field data.train holds a CloudFormation dynamic ` +
        'reference ({{resolve:...}}), which CloudFormation would resolve into the run settings ' +
        'the instance reads; put the value itself, or keep secrets out of the run config.',
    );
  });

  test('a CDK token in a key is refused, naming the field', () => {
    const path = configFile('token-key.yaml', `${VALID}training:\n  "\${Token[X.1]}": 1\n`);
    expect(errorOf(path)).toBe(
      `Invalid setting runConfig=${path}: field training.\${Token[X.1]} holds a CDK token ` +
        '(${Token[...]}), which CloudFormation would resolve into the run settings the instance ' +
        'reads; put the value itself, or keep secrets out of the run config.',
    );
  });

  test('template syntax in a list item is named by its index', () => {
    const path = configFile(
      'token-list.yaml',
      `${VALID}lora:\n  target_modules: [q_proj, "{{resolve:secretsmanager:key}}"]\n`,
    );
    expect(errorOf(path)).toContain('field lora.target_modules.1 holds a CloudFormation dynamic');
  });

  test('every refusal is one line', () => {
    const path = configFile('resolve-2.yaml', `${VALID}note: "{{resolve:ssm:/x}}"\n`);
    expect(errorOf(path, NO_SCHEMA)).not.toContain('\n');
  });
});

describe('validation against the trainer JSON Schema', () => {
  test('an unknown field is named by its path', () => {
    const path = configFile('typo.yaml', `${VALID}training:\n  learnig_rate: 0.1\n`);
    expect(errorOf(path)).toContain(
      'field training.learnig_rate is not a known setting of the trainer config.',
    );
  });

  test('a wrong type is named by its path', () => {
    const path = configFile('type.yaml', `${VALID}lora:\n  r: sixteen\n`);
    expect(errorOf(path)).toMatch(/field lora\.r must be integer/);
  });

  test('a value outside an enum lists the allowed values', () => {
    const path = configFile(
      'enum.yaml',
      VALID.replace('  base_model: builtin:tiny-llama', '  base_model: x\n  method: adapter'),
    );
    expect(errorOf(path)).toContain(
      'field model.method must be equal to one of the allowed values (allowed: lora, qlora, full).',
    );
  });

  test('a missing required field is named', () => {
    const path = configFile('required.yaml', 'data:\n  train: x.jsonl\n');
    expect(errorOf(path)).toMatch(/field (model|output)(\.\w+)? is required\./);
  });

  test('without a schema file only the YAML is checked', () => {
    const path = configFile('typo2.yaml', `${VALID}training:\n  learnig_rate: 0.1\n`);
    expect(() =>
      loadRunConfig(path, { cwd: ROOT, schemaPath: join(dir, 'no-schema.json') }),
    ).not.toThrow();
  });
});

describe('run ids', () => {
  test('canonical JSON sorts keys at every level', () => {
    expect(canonicalJson({ b: 1, a: { d: [{ z: 1, y: 2 }], c: null } })).toBe(
      '{"a":{"c":null,"d":[{"y":2,"z":1}]},"b":1}',
    );
  });

  test('the same config with keys in another order has the same run id', () => {
    const a = defaultRunId(
      { model: { method: 'lora', base_model: 'x' }, lora: { r: 8 } },
      'latest',
    );
    const b = defaultRunId(
      { lora: { r: 8 }, model: { base_model: 'x', method: 'lora' } },
      'latest',
    );
    expect(a).toBe(b);
  });

  test('a changed value changes the run id', () => {
    expect(defaultRunId({ lora: { r: 8 } }, 'latest')).not.toBe(
      defaultRunId({ lora: { r: 16 } }, 'latest'),
    );
  });

  test('the run id is the first 8 hex digits of sha256(canonical JSON + image tag)', () => {
    // sha256('{"a":1}latest') computed independently: printf '%s' '{"a":1}latest' | sha256sum
    expect(defaultRunId({ a: 1 }, 'latest')).toBe('run-a8dab931');
  });
});
