/**
 * The generated parts of docs/security.md: every cdk-nag finding the stack acknowledges (from the
 * synthesized validation report), every checkov check it acknowledges (the template's
 * `checkov.skip` metadata) and every IAM role with its permissions (from the synthesized
 * template). `make docs` writes them; test/docs checks docs/security.md holds exactly these.
 */
import { STACK_NAME } from '../../lib/app';
import { table } from './markdown';
import { type ConfigurationName, REGION, type Synthesis, synthesizeAll } from './synthesized';

/** What the tables show for a value that differs per deployment. */
const PLACEHOLDERS: Record<string, string> = {
  'AWS::AccountId': '<account>',
  'AWS::Region': '<region>',
  'AWS::Partition': 'aws',
  'AWS::URLSuffix': 'amazonaws.com',
  'AWS::StackName': STACK_NAME,
};

/** Construct path without the stack and the trailing /Resource: Storage/DataBucket. */
function shortPath(path: string): string {
  return path.replace(new RegExp(`^/?${STACK_NAME}/`), '').replace(/\/Resource$/, '');
}

/** Deployment-specific text made stable: logical ids as paths, run id, asset hashes, region. */
function readable(text: string, s: Synthesis): string {
  let result = text.replace(/<([A-Za-z0-9]+)(\.Arn)?>/g, (whole, id: string, arn?: string) => {
    const path = s.paths.get(id);
    return path ? `<${shortPath(path)}${arn ?? ''}>` : whole;
  });
  if (s.runId) result = result.split(s.runId).join('<run-id>');
  return result
    .replace(/\b[0-9a-f]{64}\b/g, '<asset-hash>')
    .split(REGION)
    .join('<region>')
    .replace(/<AWS::(\w+)>/g, (whole, name: string) => PLACEHOLDERS[`AWS::${name}`] ?? whole);
}

/** Construct paths as a sorted list of code spans. */
function codeList(paths: Iterable<string>): string {
  return [...paths]
    .sort()
    .map((p) => `\`${p}\``)
    .join(', ');
}

/** One `when` label per presence pattern across the configurations. */
function when(present: ReadonlySet<ConfigurationName>): string {
  const sagemaker = present.has('sagemaker');
  if (present.has('defaults')) {
    if (!present.has('existingNetwork')) return 'dedicated VPC (no `vpcId`)';
    return sagemaker ? 'always' : 'EC2 backend';
  }
  if (present.has('githubRepo'))
    return sagemaker ? 'with `githubRepo`' : 'EC2 backend, with `githubRepo`';
  if (present.has('run')) {
    return sagemaker ? 'with a run (`runConfig`)' : 'EC2 backend, with a run (`runConfig`)';
  }
  if (present.has('existingNetwork')) return 'with `vpcId`';
  if (sagemaker) return 'with `backend=sagemaker`';
  throw new Error('a finding present in no configuration');
}

interface FindingRow {
  pack: string;
  rule: string;
  reason: string;
  resources: Set<string>;
  present: Set<ConfigurationName>;
}

/** The acknowledged findings table and the rule glossary under it. */
export function renderFindingsTable(all: Record<ConfigurationName, Synthesis>): string {
  const rows = new Map<string, FindingRow>();
  const descriptions = new Map<string, string>();
  for (const [name, s] of Object.entries(all) as [ConfigurationName, Synthesis][]) {
    for (const f of s.suppressed) {
      const rule = readable(f.rule, s);
      const key = `${f.pack}\0${rule}\0${f.reason}`;
      const row = rows.get(key) ?? {
        pack: f.pack,
        rule,
        reason: f.reason,
        resources: new Set<string>(),
        present: new Set<ConfigurationName>(),
      };
      row.resources.add(shortPath(f.path));
      row.present.add(name);
      rows.set(key, row);
      // NIST rules end in a long list of control ids; the rule name already says which.
      descriptions.set(
        f.rule.replace(/\[.*$/, ''),
        f.description.replace(/ - \(Control IDs?: .*\)\.?$/, '.'),
      );
    }
  }
  const sorted = [...rows.values()].sort(
    (a, b) =>
      a.pack.localeCompare(b.pack) ||
      a.rule.localeCompare(b.rule) ||
      [...a.resources][0].localeCompare([...b.resources][0]),
  );
  const findings = table(
    ['finding', 'resources', 'when', 'reason'],
    sorted.map((r) => [`\`${r.rule}\``, codeList(r.resources), when(r.present), r.reason]),
  );
  const glossary = table(
    ['rule', 'what cdk-nag checks (its own words)'],
    [...descriptions.entries()]
      .sort(([a], [b]) => a.localeCompare(b))
      .map(([rule, description]) => [`\`${rule}\``, description]),
  );
  return `${findings}\n\n${glossary}`;
}

/** The checkov checks the templates acknowledge (lib/nag.ts acknowledgeCheckov). */
export function renderCheckovTable(all: Record<ConfigurationName, Synthesis>): string {
  const rows = new Map<
    string,
    { check: string; reason: string; resources: Set<string>; present: Set<ConfigurationName> }
  >();
  for (const [name, s] of Object.entries(all) as [ConfigurationName, Synthesis][]) {
    for (const [id, resource] of Object.entries(s.template.Resources)) {
      const skips = (resource.Metadata?.checkov as { skip?: { id: string; comment: string }[] })
        ?.skip;
      for (const skip of skips ?? []) {
        const key = `${skip.id}\0${skip.comment}`;
        const row = rows.get(key) ?? {
          check: skip.id,
          reason: skip.comment,
          resources: new Set<string>(),
          present: new Set<ConfigurationName>(),
        };
        row.resources.add(shortPath(s.paths.get(id) ?? id));
        row.present.add(name);
        rows.set(key, row);
      }
    }
  }
  return table(
    ['check', 'resources', 'when', 'reason'],
    [...rows.values()]
      .sort((a, b) => a.check.localeCompare(b.check) || a.reason.localeCompare(b.reason))
      .map((r) => [`\`${r.check}\``, codeList(r.resources), when(r.present), r.reason]),
  );
}

type Intrinsic = string | number | boolean | null | Intrinsic[] | { [key: string]: Intrinsic };

/** A template value as text: references become `<Construct/Path>` or placeholders. */
function render(value: Intrinsic, s: Synthesis): string {
  if (value === null || typeof value !== 'object') return readable(String(value), s);
  if (Array.isArray(value)) return value.map((v) => render(v, s)).join(', ');
  if ('Ref' in value) {
    const id = value.Ref as string;
    return PLACEHOLDERS[id] ?? `<${shortPath(s.paths.get(id) ?? id)}>`;
  }
  if ('Fn::GetAtt' in value) {
    const [id, attribute] = value['Fn::GetAtt'] as string[];
    return `<${shortPath(s.paths.get(id) ?? id)}.${attribute}>`;
  }
  if ('Fn::Join' in value) {
    const [separator, parts] = value['Fn::Join'] as [string, Intrinsic[]];
    return parts.map((p) => render(p, s)).join(separator);
  }
  if ('Fn::Sub' in value) {
    const text = value['Fn::Sub'] as string;
    return readable(
      text.replace(/\$\{([\w:]+)\}/g, (whole, name: string) => PLACEHOLDERS[name] ?? whole),
      s,
    );
  }
  return readable(JSON.stringify(value), s);
}

interface Statement {
  Effect: string;
  Action: Intrinsic;
  Resource?: Intrinsic;
  Condition?: Record<string, Record<string, Intrinsic>>;
  Principal?: Intrinsic;
}

function condition(c: Statement['Condition'], s: Synthesis): string {
  if (!c) return '';
  return Object.entries(c)
    .flatMap(([operator, tests]) =>
      Object.entries(tests).map(([key, v]) => `${operator} \`${key}\` = \`${render(v, s)}\``),
    )
    .join('; ');
}

function list(value: Intrinsic | undefined, s: Synthesis): string[] {
  if (value === undefined) return [];
  return (Array.isArray(value) ? value : [value]).map((v) => render(v, s));
}

/** Every IAM role of a stack with a run and a GitHub role, and what each may do. */
export function renderRolesTable(
  s: Synthesis,
  include: (path: string) => boolean = () => true,
): string {
  const resources = Object.entries(s.template.Resources);
  const sections: string[] = [];
  const roles = resources
    .filter(([, r]) => r.Type === 'AWS::IAM::Role')
    .filter(([id]) => include(s.paths.get(id) ?? id));
  for (const [roleId, role] of roles) {
    const props = role.Properties as {
      AssumeRolePolicyDocument: { Statement: Statement[] };
      ManagedPolicyArns?: Intrinsic[];
      Policies?: { PolicyDocument: { Statement: Statement[] } }[];
    };
    const trust = props.AssumeRolePolicyDocument.Statement.map((t) => {
      const principals = Object.entries(t.Principal as Record<string, Intrinsic>).map(
        ([kind, who]) => `${kind} \`${render(who, s)}\``,
      );
      const cond = condition(t.Condition, s);
      return `${principals.join(', ')}${cond ? ` if ${cond}` : ''}`;
    }).join('; ');
    const attached = resources
      .filter(([, r]) => r.Type === 'AWS::IAM::Policy')
      .filter(([, r]) =>
        ((r.Properties as { Roles: { Ref: string }[] }).Roles ?? []).some(
          (ref) => ref.Ref === roleId,
        ),
      )
      .flatMap(
        ([, r]) =>
          (r.Properties as { PolicyDocument: { Statement: Statement[] } }).PolicyDocument.Statement,
      );
    const statements = [
      ...attached,
      ...(props.Policies ?? []).flatMap((p) => p.PolicyDocument.Statement),
    ];
    if ((props.ManagedPolicyArns ?? []).length > 0) {
      throw new Error(`role ${roleId} has managed policies: render them too`);
    }
    const rows = statements.map((st) => [
      st.Effect === 'Allow' ? '' : `**${st.Effect}** `,
      list(st.Action, s)
        .map((a) => `\`${a}\``)
        .join(', '),
      list(st.Resource, s)
        .map((r) => `\`${r}\``)
        .join(', '),
      condition(st.Condition, s),
    ]);
    sections.push(
      `**\`${shortPath(s.paths.get(roleId) ?? roleId)}\`**, assumed by ${trust}\n\n` +
        table(
          ['actions', 'resources', 'condition'],
          rows.map(([effect, actions, res, cond]) => [`${effect}${actions}`, res, cond]),
        ),
    );
  }
  return sections.join('\n\n');
}

/** Both blocks of docs/security.md, from one synthesis of every configuration. */
export function renderSecurityBlocks(
  all: Record<ConfigurationName, Synthesis> = synthesizeAll(),
): Record<'nag-findings' | 'checkov-acks' | 'iam-roles', string> {
  return {
    'nag-findings': renderFindingsTable(all),
    'checkov-acks': renderCheckovTable(all),
    'iam-roles':
      renderRolesTable(all.run) +
      '\n\nWith `backend=sagemaker` there is no EC2 compute (no instance, trainer or VPC roles); ' +
      'these roles are added:\n\n' +
      renderRolesTable(all.sagemaker, (path) => path.includes('/TrainingJobs/')),
  };
}
