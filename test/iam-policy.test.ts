/** The test policy evaluator (test/support/iam-policy.ts) on hand-written policies. */
import { evaluatePolicy, resolveIntrinsics } from './support/iam-policy';

const TOPIC = 'arn:aws:sns:us-east-1:111111111111:alerts';
const publish = { action: 'sns:Publish', resource: TOPIC };

const allowAndDeny = {
  Version: '2012-10-17',
  Statement: [
    {
      Effect: 'Allow',
      Principal: { Service: 'events.amazonaws.com' },
      Action: 'sns:*',
      Resource: TOPIC,
    },
    {
      Effect: 'Deny',
      Principal: '*',
      Action: 'sns:Publish',
      Resource: TOPIC,
      Condition: { Bool: { 'aws:SecureTransport': 'false' } },
    },
  ],
};

describe('the test IAM policy evaluator', () => {
  test('an Allow that matches principal, action and resource allows', () => {
    expect(
      evaluatePolicy(allowAndDeny, {
        ...publish,
        principal: { Service: 'events.amazonaws.com' },
        context: { 'aws:SecureTransport': 'true' },
      }),
    ).toBe('allow');
  });

  test('an explicit Deny wins over a matching Allow', () => {
    expect(
      evaluatePolicy(allowAndDeny, {
        ...publish,
        principal: { Service: 'events.amazonaws.com' },
        context: { 'aws:SecureTransport': 'false' },
      }),
    ).toBe('explicit-deny');
  });

  test('no matching statement is the implicit deny', () => {
    expect(
      evaluatePolicy(allowAndDeny, {
        ...publish,
        principal: { Service: 'sqs.amazonaws.com' },
        context: { 'aws:SecureTransport': 'true' },
      }),
    ).toBe('implicit-deny');
  });

  test('a condition key the request lacks does not hold', () => {
    const policy = {
      Statement: [
        {
          Effect: 'Allow',
          Principal: { Service: 'budgets.amazonaws.com' },
          Action: 'sns:Publish',
          Resource: TOPIC,
          Condition: { StringEquals: { 'aws:SourceAccount': '111111111111' } },
        },
      ],
    };
    expect(
      evaluatePolicy(policy, { ...publish, principal: { Service: 'budgets.amazonaws.com' } }),
    ).toBe('implicit-deny');
  });

  test('NotAction matches every action but the listed ones', () => {
    const policy = {
      Statement: [{ Effect: 'Allow', NotAction: 's3:Delete*', Resource: '*' }],
    };
    expect(evaluatePolicy(policy, { action: 's3:PutObject', resource: 'arn:aws:s3:::b/k' })).toBe(
      'allow',
    );
    expect(
      evaluatePolicy(policy, { action: 's3:DeleteObject', resource: 'arn:aws:s3:::b/k' }),
    ).toBe('implicit-deny');
  });

  test('StringLike and ArnLike take wildcards; ArnLike matches part by part', () => {
    const policy = {
      Statement: [
        {
          Effect: 'Allow',
          Action: 's3:ListBucket',
          Resource: 'arn:aws:s3:::b',
          Condition: {
            StringLike: { 's3:prefix': ['runs/*/ledger.json'] },
            ArnLike: { 'aws:PrincipalArn': 'arn:aws:iam::*:role/trainer-*' },
          },
        },
      ],
    };
    const request = (prefix: string, principalArn: string) => ({
      action: 's3:ListBucket',
      resource: 'arn:aws:s3:::b',
      context: { 's3:prefix': prefix, 'aws:PrincipalArn': principalArn },
    });
    const trainer = 'arn:aws:iam::111111111111:role/trainer-1';
    expect(evaluatePolicy(policy, request('runs/r1/ledger.json', trainer))).toBe('allow');
    expect(evaluatePolicy(policy, request('runs/r1/lease.json', trainer))).toBe('implicit-deny');
    expect(
      evaluatePolicy(policy, request('runs/r1/ledger.json', 'arn:aws:iam::1:user/trainer-1')),
    ).toBe('implicit-deny');
  });

  test('an account principal stands for every principal of that account', () => {
    const policy = {
      Statement: [
        {
          Effect: 'Allow',
          Principal: { AWS: '111111111111' },
          Action: 'sns:Publish',
          Resource: '*',
        },
      ],
    };
    const caller = (arn: string) => ({ ...publish, principal: { AWS: arn } });
    expect(evaluatePolicy(policy, caller('arn:aws:iam::111111111111:role/x'))).toBe('allow');
    expect(evaluatePolicy(policy, caller('arn:aws:iam::222222222222:role/x'))).toBe(
      'implicit-deny',
    );
  });

  test('an unknown condition operator throws instead of being ignored', () => {
    const policy = {
      Statement: [
        {
          Effect: 'Deny',
          Principal: '*',
          Action: 'sns:Publish',
          Resource: TOPIC,
          Condition: { NumericLessThan: { 'aws:MultiFactorAuthAge': '3600' } },
        },
      ],
    };
    expect(() =>
      evaluatePolicy(policy, { ...publish, principal: { Service: 'events.amazonaws.com' } }),
    ).toThrow('unsupported condition operator NumericLessThan');
  });

  test('a resource-policy statement without Principal throws for a request with a caller', () => {
    const policy = { Statement: [{ Effect: 'Allow', Action: 'sns:Publish', Resource: TOPIC }] };
    expect(() =>
      evaluatePolicy(policy, { ...publish, principal: { Service: 'events.amazonaws.com' } }),
    ).toThrow('names no Principal');
  });

  test('an unresolved intrinsic in a policy throws', () => {
    const policy = {
      Statement: [
        { Effect: 'Allow', Principal: '*', Action: 'sns:Publish', Resource: { Ref: 'Topic' } },
      ],
    };
    expect(() =>
      evaluatePolicy(policy, { ...publish, principal: { Service: 'events.amazonaws.com' } }),
    ).toThrow('unresolved value');
  });

  test('resolveIntrinsics fills Ref, Fn::GetAtt, Fn::Join and Fn::Sub', () => {
    expect(
      resolveIntrinsics(
        {
          a: { Ref: 'AWS::AccountId' },
          b: { 'Fn::Join': ['', [{ 'Fn::GetAtt': ['Bucket', 'Arn'] }, '/runs/*']] },
          c: { 'Fn::Sub': 'assets-${AWS::AccountId}' },
        },
        { 'AWS::AccountId': '111111111111', 'Bucket.Arn': 'arn:aws:s3:::b' },
      ),
    ).toEqual({ a: '111111111111', b: 'arn:aws:s3:::b/runs/*', c: 'assets-111111111111' });
  });

  test('resolveIntrinsics throws on a name without a value', () => {
    expect(() => resolveIntrinsics({ Ref: 'Missing' }, {})).toThrow('no value for Missing');
  });
});
