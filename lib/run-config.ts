/**
 * The trainer run config (YAML) as the stack sees it: read and validated at synth, so a bad
 * config fails `cdk synth` instead of a GPU instance.
 *
 * Validation uses the JSON Schema the trainer publishes (`tuning-trainer schema`, committed as
 * trainer-image/run-config.schema.json). Until that file exists only the YAML syntax is checked.
 */
import { createHash } from 'node:crypto';
import { existsSync, readFileSync, statSync } from 'node:fs';
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

/**
 * The largest run config the stack accepts, as compact JSON: it travels in the run-settings SSM
 * parameter (8 KB in the Advanced tier) beside ~1.5 KB of other settings. YAML comments and
 * indentation do not count.
 */
export const MAX_RUN_CONFIG_BYTES = 6144;

/**
 * Text CloudFormation or the CDK would act on inside a template string: a dynamic reference
 * would put a secret's plaintext into the parameter the instance reads, a token crashes synth.
 */
const TEMPLATE_SYNTAX = [
  { marker: '{{resolve:', what: 'a CloudFormation dynamic reference ({{resolve:...}})' },
  { marker: '${Token[', what: 'a CDK token (${Token[...]})' },
];

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
  if (!statSync(file).isFile()) fail(`not a file (${file}); give the path of the YAML file.`);

  let document: unknown;
  try {
    document = parseYaml(readFileSync(file, 'utf8'));
  } catch (error) {
    if (error instanceof ReferenceError && /alias count/.test(error.message)) {
      fail('too many YAML aliases (*name) expanded; write the values out instead.');
    }
    if (!(error instanceof YAMLParseError)) throw error;
    const where = error.linePos ? ` at line ${error.linePos[0].line}` : '';
    fail(`not valid YAML${where}: ${error.message.split('\n')[0]}`);
  }
  if (document === null || typeof document !== 'object' || Array.isArray(document)) {
    fail('must be a YAML mapping with the sections model, lora, data, training, output.');
  }

  const bytes = Buffer.byteLength(JSON.stringify(document), 'utf8');
  if (bytes > MAX_RUN_CONFIG_BYTES) {
    fail(
      `${bytes} bytes as JSON, over the ${MAX_RUN_CONFIG_BYTES} a run config may have (it ` +
        'travels in an SSM parameter of at most 8 KB); remove what repeats a default.',
    );
  }
  const templated = findTemplateSyntax(document, []);
  if (templated) {
    fail(
      `field ${templated.field} holds ${templated.what}, which CloudFormation would resolve into ` +
        'the run settings the instance reads; put the value itself, or keep secrets out of the ' +
        'run config.',
    );
  }

  const schemaPath = options.schemaPath ?? DEFAULT_RUN_CONFIG_SCHEMA_PATH;
  if (existsSync(schemaPath)) {
    const errors = validateAgainstSchema(document, schemaPath);
    if (errors.length > 0) fail(describeSchemaError(errors[0]));
  }
  return document as Record<string, unknown>;
}

/** The first key or string value holding template syntax, with its dotted field name. */
function findTemplateSyntax(
  value: unknown,
  path: string[],
): { field: string; what: string } | undefined {
  const found = (text: string, at: string[]) => {
    const hit = TEMPLATE_SYNTAX.find((t) => text.includes(t.marker));
    return hit ? { field: at.join('.') || '(top level)', what: hit.what } : undefined;
  };
  if (typeof value === 'string') return found(value, path);
  if (Array.isArray(value)) {
    for (const [i, item] of value.entries()) {
      const hit = findTemplateSyntax(item, [...path, String(i)]);
      if (hit) return hit;
    }
  } else if (value !== null && typeof value === 'object') {
    for (const [key, item] of Object.entries(value)) {
      const hit = found(key, [...path, key]) ?? findTemplateSyntax(item, [...path, key]);
      if (hit) return hit;
    }
  }
  return undefined;
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
