/**
 * The trainer run config (YAML) as the stack sees it: read and validated at synth, so a bad
 * config fails `cdk synth` instead of a GPU instance.
 *
 * Validation uses the JSON Schema the trainer publishes (`tuning-trainer schema`, committed as
 * trainer-image/run-config.schema.json). Until that file exists only the YAML syntax is checked.
 */
import { createHash } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { isAbsolute, join, resolve } from 'node:path';
import Ajv2020, { type ErrorObject } from 'ajv/dist/2020';
import { parse as parseYaml, YAMLParseError } from 'yaml';
import { UserInputError } from './errors';

export const DEFAULT_RUN_CONFIG_SCHEMA_PATH = join(
  __dirname,
  '..',
  'trainer-image',
  'run-config.schema.json',
);

export interface LoadRunConfigOptions {
  readonly cwd: string;
  /** @default DEFAULT_RUN_CONFIG_SCHEMA_PATH */
  readonly schemaPath?: string;
}

/** Read, parse and validate a run config; throws UserInputError naming the failing field. */
export function loadRunConfig(
  path: string,
  options: LoadRunConfigOptions,
): Record<string, unknown> {
  const fail = (why: string): never => {
    throw new UserInputError(`Invalid setting runConfig=${path}: ${why}`);
  };
  const file = isAbsolute(path) ? path : resolve(options.cwd, path);
  if (!existsSync(file)) fail(`file not found (looked at ${file}).`);

  let document: unknown;
  try {
    document = parseYaml(readFileSync(file, 'utf8'));
  } catch (error) {
    if (!(error instanceof YAMLParseError)) throw error;
    const where = error.linePos ? ` at line ${error.linePos[0].line}` : '';
    fail(`not valid YAML${where}: ${error.message.split('\n')[0]}`);
  }
  if (document === null || typeof document !== 'object' || Array.isArray(document)) {
    fail('must be a YAML mapping with the sections model, lora, data, training, output.');
  }

  const schemaPath = options.schemaPath ?? DEFAULT_RUN_CONFIG_SCHEMA_PATH;
  if (existsSync(schemaPath)) {
    const errors = validateAgainstSchema(document, schemaPath);
    if (errors.length > 0) fail(describeSchemaError(errors[0]));
  }
  return document as Record<string, unknown>;
}

const validators = new Map<string, ReturnType<Ajv2020['compile']>>();

function validateAgainstSchema(document: unknown, schemaPath: string): ErrorObject[] {
  let validate = validators.get(schemaPath);
  if (!validate) {
    // strict: false because generated schemas carry annotations (title, examples) Ajv does not
    // know; formats are informational only.
    const ajv = new Ajv2020({ allErrors: true, strict: false, validateFormats: false });
    validate = ajv.compile(JSON.parse(readFileSync(schemaPath, 'utf8')));
    validators.set(schemaPath, validate);
  }
  return validate(document) ? [] : [...(validate.errors ?? [])];
}

function describeSchemaError(error: ErrorObject): string {
  const parts = error.instancePath.split('/').filter((p) => p !== '');
  const field = parts.map((p) => p.replace(/~1/g, '/').replace(/~0/g, '~'));
  const params = error.params as Record<string, unknown>;
  if (error.keyword === 'additionalProperties') {
    const name = [...field, String(params.additionalProperty)].join('.');
    return `field ${name} is not a known setting of the trainer config.`;
  }
  if (error.keyword === 'required') {
    const name = [...field, String(params.missingProperty)].join('.');
    return `field ${name} is required.`;
  }
  const name = field.length > 0 ? field.join('.') : '(top level)';
  const allowed = Array.isArray(params.allowedValues)
    ? ` (allowed: ${params.allowedValues.join(', ')})`
    : '';
  return `field ${name} ${error.message ?? 'is invalid'}${allowed}.`;
}

/** JSON with object keys sorted at every level, so equal configs hash equally. */
export function canonicalJson(value: unknown): string {
  return JSON.stringify(sortKeys(value));
}

function sortKeys(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(sortKeys);
  if (value !== null && typeof value === 'object') {
    return Object.fromEntries(
      Object.keys(value)
        .sort()
        .map((k) => [k, sortKeys((value as Record<string, unknown>)[k])]),
    );
  }
  return value;
}

/** `run-` + 8 hex of sha256(canonical run config JSON + image tag): same run, same id. */
export function defaultRunId(config: unknown, imageTag: string): string {
  const digest = createHash('sha256')
    .update(canonicalJson(config) + imageTag)
    .digest('hex');
  return `run-${digest.slice(0, 8)}`;
}
