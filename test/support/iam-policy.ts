/**
 * A small IAM policy evaluator for tests: answers whether one policy document allows a request,
 * the way AWS evaluates a single policy (an explicit Deny wins, then any Allow, else the implicit
 * deny). It knows only what tuning-lab's policies use and throws on anything else (a condition
 * operator, NotPrincipal, an intrinsic function), so a test can never pass by silently ignoring
 * part of a policy.
 *
 * A resource policy (SNS topic, KMS key) names its principals and is evaluated for a request
 * with a `principal`; an identity policy (a role's) names none and is evaluated for a request
 * without one.
 */

/** Who calls: an AWS service, or an IAM principal by its ARN. */
export type RequestPrincipal = { readonly Service: string } | { readonly AWS: string };

export interface PolicyRequest {
  /** The caller, for a resource policy; absent for an identity policy (the caller is its role). */
  readonly principal?: RequestPrincipal;
  readonly action: string;
  readonly resource: string;
  /** The request's condition keys, e.g. aws:SourceAccount, aws:SecureTransport, s3:prefix. */
  readonly context?: Readonly<Record<string, string>>;
}

export type PolicyDecision = 'allow' | 'explicit-deny' | 'implicit-deny';

interface Statement {
  readonly Sid?: string;
  readonly Effect: 'Allow' | 'Deny';
  readonly Principal?: unknown;
  readonly Action?: string | string[];
  readonly NotAction?: string | string[];
  readonly Resource?: string | string[];
  readonly NotResource?: string | string[];
  readonly Condition?: Record<string, Record<string, unknown>>;
}

const KNOWN_STATEMENT_FIELDS = new Set([
  'Sid',
  'Effect',
  'Principal',
  'Action',
  'NotAction',
  'Resource',
  'NotResource',
  'Condition',
]);

/** Evaluate one policy document (with concrete values: see resolveIntrinsics) for a request. */
export function evaluatePolicy(document: unknown, request: PolicyRequest): PolicyDecision {
  const statements = statementsOf(document);
  let allowed = false;
  for (const statement of statements) {
    if (!applies(statement, request)) continue;
    if (statement.Effect === 'Deny') return 'explicit-deny';
    allowed = true;
  }
  return allowed ? 'allow' : 'implicit-deny';
}

/**
 * Replace CloudFormation intrinsics with concrete values: `{Ref: X}` and `Fn::Sub`'s `${X}` by
 * `values[X]` (pseudo parameters too, e.g. `AWS::AccountId`), `{"Fn::GetAtt": [X, A]}` and
 * `${X.A}` by `values["X.A"]`, and `Fn::Join` by the joined string. A name without a value
 * throws, unless `otherwise` gives one (e.g. a placeholder for resources a test does not ask
 * about); any other intrinsic throws.
 */
export function resolveIntrinsics(
  value: unknown,
  values: Readonly<Record<string, string>>,
  otherwise?: (name: string) => string,
): unknown {
  const named = (name: string): string => {
    const found = values[name] ?? otherwise?.(name);
    if (found === undefined) throw new Error(`resolveIntrinsics: no value for ${name}`);
    return found;
  };
  const resolve = (item: unknown) => resolveIntrinsics(item, values, otherwise);
  if (Array.isArray(value)) return value.map(resolve);
  if (value === null || typeof value !== 'object') return value;
  const entries = Object.entries(value as Record<string, unknown>);
  const intrinsic = entries.length === 1 && /^(Ref$|Fn::)/.test(entries[0][0]);
  if (!intrinsic) return Object.fromEntries(entries.map(([k, v]) => [k, resolve(v)]));
  const [name, argument] = entries[0];
  switch (name) {
    case 'Ref':
      return named(argument as string);
    case 'Fn::GetAtt': {
      const [resource, attribute] = argument as [string, string];
      return named(`${resource}.${attribute}`);
    }
    case 'Fn::Join': {
      const [separator, parts] = argument as [string, unknown[]];
      return parts.map((part) => String(resolve(part))).join(separator);
    }
    case 'Fn::Sub': {
      if (typeof argument !== 'string') throw new Error('resolveIntrinsics: Fn::Sub with a map');
      return argument.replace(/\$\{([^}]+)\}/g, (_, ref: string) => named(ref));
    }
    default:
      throw new Error(`resolveIntrinsics: unsupported intrinsic ${name}`);
  }
}

function statementsOf(document: unknown): Statement[] {
  const raw = (document as { Statement?: unknown }).Statement;
  if (raw === undefined) throw new Error('evaluatePolicy: the document has no Statement');
  const statements = (Array.isArray(raw) ? raw : [raw]) as Statement[];
  for (const statement of statements) {
    for (const field of Object.keys(statement)) {
      if (!KNOWN_STATEMENT_FIELDS.has(field)) {
        throw new Error(`evaluatePolicy: unsupported statement field ${field}`);
      }
    }
    if (statement.Effect !== 'Allow' && statement.Effect !== 'Deny') {
      throw new Error(`evaluatePolicy: Effect must be Allow or Deny, got ${statement.Effect}`);
    }
    if ((statement.Action === undefined) === (statement.NotAction === undefined)) {
      throw new Error('evaluatePolicy: a statement needs exactly one of Action and NotAction');
    }
    if ((statement.Resource === undefined) === (statement.NotResource === undefined)) {
      throw new Error('evaluatePolicy: a statement needs exactly one of Resource and NotResource');
    }
    for (const value of [
      statement.Action,
      statement.NotAction,
      statement.Resource,
      statement.NotResource,
    ]) {
      if (value !== undefined && list(value).some((v) => typeof v !== 'string')) {
        throw new Error(`evaluatePolicy: unresolved value ${JSON.stringify(value)}`);
      }
    }
  }
  return statements;
}

function applies(statement: Statement, request: PolicyRequest): boolean {
  return (
    principalMatches(statement, request) &&
    actionMatches(statement, request.action) &&
    resourceMatches(statement, request.resource) &&
    conditionsHold(statement.Condition, request.context ?? {})
  );
}

function principalMatches(statement: Statement, request: PolicyRequest): boolean {
  const resourcePolicy = request.principal !== undefined;
  if ((statement.Principal !== undefined) !== resourcePolicy) {
    throw new Error(
      resourcePolicy
        ? `evaluatePolicy: statement ${statement.Sid ?? ''} names no Principal (an identity policy?)`
        : `evaluatePolicy: statement ${statement.Sid ?? ''} names a Principal (a resource policy?)`,
    );
  }
  const caller = request.principal;
  if (caller === undefined) return true;
  if (statement.Principal === '*') return true;
  const named = statement.Principal as Record<string, unknown>;
  for (const [kind, values] of Object.entries(named)) {
    if (kind !== 'Service' && kind !== 'AWS') {
      throw new Error(`evaluatePolicy: unsupported principal kind ${kind}`);
    }
    if (list(values).some((v) => typeof v !== 'string')) {
      throw new Error(`evaluatePolicy: unresolved principal ${JSON.stringify(values)}`);
    }
  }
  if ('Service' in caller) {
    return list(named.Service).some((service) => service === caller.Service);
  }
  return list(named.AWS).some((principal) => awsPrincipalMatches(String(principal), caller.AWS));
}

/** `*`, the exact ARN, or an account (id or `:root` ARN), which stands for all its principals. */
function awsPrincipalMatches(named: string, callerArn: string): boolean {
  if (named === '*' || named === callerArn) return true;
  const account = /^\d{12}$/.test(named) ? named : /^arn:[^:]+:iam::(\d{12}):root$/.exec(named)?.[1];
  return account !== undefined && callerArn.split(':')[4] === account;
}

/** An element and its Not- form: the value matches one of `element`, or none of `notElement`. */
function elementMatches(
  element: unknown,
  notElement: unknown,
  value: string,
  ignoreCase: boolean,
): boolean {
  const matches = (patterns: unknown) =>
    list(patterns).some((pattern) => glob(String(pattern), value, ignoreCase));
  return element !== undefined ? matches(element) : !matches(notElement);
}

function actionMatches(statement: Statement, action: string): boolean {
  return elementMatches(statement.Action, statement.NotAction, action, true);
}

function resourceMatches(statement: Statement, resource: string): boolean {
  return elementMatches(statement.Resource, statement.NotResource, resource, false);
}

type Operator = (policyValue: string, requestValue: string) => boolean;

const OPERATORS: Readonly<Record<string, Operator>> = {
  StringEquals: (p, r) => p === r,
  StringLike: (p, r) => glob(p, r, false),
  ArnEquals: (p, r) => arnLike(p, r),
  ArnLike: (p, r) => arnLike(p, r),
  Bool: (p, r) => p.toLowerCase() === r.toLowerCase(),
};

/** Every operator block and every key must hold; any one of a key's values suffices. */
function conditionsHold(
  condition: Statement['Condition'],
  context: Readonly<Record<string, string>>,
): boolean {
  if (condition === undefined) return true;
  const byKey = new Map(Object.entries(context).map(([k, v]) => [k.toLowerCase(), v]));
  return Object.entries(condition).every(([operatorName, keys]) => {
    const operator = OPERATORS[operatorName];
    if (!operator) throw new Error(`evaluatePolicy: unsupported condition operator ${operatorName}`);
    return Object.entries(keys).every(([key, values]) => {
      const requestValue = byKey.get(key.toLowerCase());
      if (requestValue === undefined) return false;
      return list(values).some((value) => {
        if (typeof value !== 'string' && typeof value !== 'boolean') {
          throw new Error(`evaluatePolicy: unresolved condition value ${JSON.stringify(value)}`);
        }
        return operator(String(value), requestValue);
      });
    });
  });
}

/** ArnLike/ArnEquals: each of the six colon-separated parts matches on its own. */
function arnLike(pattern: string, arn: string): boolean {
  const parts = (value: string) => {
    const split = value.split(':');
    return [...split.slice(0, 5), split.slice(5).join(':')];
  };
  const [p, a] = [parts(pattern), parts(arn)];
  if (p.length !== 6 || a.length !== 6 || !pattern.startsWith('arn:')) return false;
  return p.every((part, i) => glob(part, a[i], false));
}

/** IAM wildcards: `*` any run of characters, `?` one character. */
function glob(pattern: string, value: string, ignoreCase: boolean): boolean {
  const source = pattern
    .split('')
    .map((c) => (c === '*' ? '.*' : c === '?' ? '.' : c.replace(/[.+^${}()|[\]\\]/g, '\\$&')))
    .join('');
  return new RegExp(`^${source}$`, ignoreCase ? 'is' : 's').test(value);
}

function list(value: unknown): unknown[] {
  if (value === undefined) return [];
  return Array.isArray(value) ? value : [value];
}
