import { Match } from 'aws-cdk-lib/assertions';
import { synth } from './support/synth';

const TRUST_CONDITION = {
  StringEquals: {
    'token.actions.githubusercontent.com:aud': 'sts.amazonaws.com',
    'token.actions.githubusercontent.com:sub': 'repo:acme/llm:ref:refs/heads/main',
  },
};

describe('registry layer with githubRepo', () => {
  const { template, stack } = synth({ githubRepo: 'acme/llm' });
  const repoId = stack.getLogicalId(stack.registry.repository.node.defaultChild as never);

  test('the repository scans images on push', () => {
    template.hasResourceProperties('AWS::ECR::Repository', {
      ImageScanningConfiguration: { ScanOnPush: true },
    });
  });

  test('tags are immutable except the moving latest tag', () => {
    template.hasResourceProperties('AWS::ECR::Repository', {
      ImageTagMutability: 'IMMUTABLE_WITH_EXCLUSION',
      ImageTagMutabilityExclusionFilters: [
        {
          ImageTagMutabilityExclusionFilterType: 'WILDCARD',
          ImageTagMutabilityExclusionFilterValue: 'latest',
        },
      ],
    });
  });

  test('the lifecycle keeps the newest 30 images and expires untagged ones after 7 days', () => {
    const repository = Object.values(template.findResources('AWS::ECR::Repository'))[0];
    const policy = JSON.parse(repository.Properties.LifecyclePolicy.LifecyclePolicyText);
    expect(policy.rules).toEqual([
      expect.objectContaining({
        selection: expect.objectContaining({
          tagStatus: 'untagged',
          countType: 'sinceImagePushed',
          countNumber: 7,
        }),
      }),
      expect.objectContaining({
        selection: expect.objectContaining({
          tagStatus: 'any',
          countType: 'imageCountMoreThan',
          countNumber: 30,
        }),
      }),
    ]);
  });

  test('the repository is retained by default', () => {
    template.hasResource('AWS::ECR::Repository', { DeletionPolicy: 'Retain' });
  });

  test('a native OIDC provider for GitHub Actions is created (no custom resource)', () => {
    template.resourceCountIs('AWS::IAM::OIDCProvider', 1);
    template.hasResourceProperties('AWS::IAM::OIDCProvider', {
      Url: 'https://token.actions.githubusercontent.com',
      ClientIdList: ['sts.amazonaws.com'],
    });
    expect(JSON.stringify(template.toJSON())).not.toContain('Custom::AWSCDKOpenIdConnectProvider');
  });

  test('the role trusts exactly one repo and branch with StringEquals, no wildcards', () => {
    template.hasResourceProperties('AWS::IAM::Role', {
      AssumeRolePolicyDocument: {
        Statement: [
          {
            Action: 'sts:AssumeRoleWithWebIdentity',
            Effect: 'Allow',
            Principal: { Federated: { Ref: Match.stringLikeRegexp('GitHubOidcProvider') } },
            Condition: TRUST_CONDITION,
          },
        ],
      },
    });
    const roles = template.findResources('AWS::IAM::Role', {
      Properties: {
        AssumeRolePolicyDocument: {
          Statement: [Match.objectLike({ Action: 'sts:AssumeRoleWithWebIdentity' })],
        },
      },
    });
    const trust = JSON.stringify(Object.values(roles)[0].Properties.AssumeRolePolicyDocument);
    expect(trust).not.toMatch(/StringLike|ForAllValues|\*/);
  });

  test('the role may push and pull this repository only', () => {
    const policies = template.findResources('AWS::IAM::Policy', {
      Properties: { Roles: [{ Ref: Match.stringLikeRegexp('GitHubImageRole') }] },
    });
    const statements = Object.values(policies)[0].Properties.PolicyDocument.Statement;
    expect(statements).toEqual(
      expect.arrayContaining([
        expect.objectContaining({
          Action: expect.arrayContaining([
            'ecr:PutImage',
            'ecr:BatchGetImage',
            'ecr:CompleteLayerUpload',
          ]),
          Resource: { 'Fn::GetAtt': [repoId, 'Arn'] },
        }),
        expect.objectContaining({ Action: 'ecr:GetAuthorizationToken', Resource: '*' }),
      ]),
    );
    for (const statement of statements) {
      if (statement.Action !== 'ecr:GetAuthorizationToken') {
        expect(statement.Resource).toEqual({ 'Fn::GetAtt': [repoId, 'Arn'] });
      }
    }
  });

  test('the role may describe the images of this repository, to skip a commit already pushed', () => {
    const policies = template.findResources('AWS::IAM::Policy', {
      Properties: { Roles: [{ Ref: Match.stringLikeRegexp('GitHubImageRole') }] },
    });
    const statements = Object.values(policies)[0].Properties.PolicyDocument.Statement;
    const describing = statements.filter((s: { Action: string | string[] }) =>
      [s.Action].flat().includes('ecr:DescribeImages'),
    );
    expect(describing).toEqual([
      expect.objectContaining({ Effect: 'Allow', Resource: { 'Fn::GetAtt': [repoId, 'Arn'] } }),
    ]);
  });
});

describe('registry layer with another branch, ids in the repository name, an imported OIDC provider', () => {
  const arn = 'arn:aws:iam::123456789012:oidc-provider/token.actions.githubusercontent.com';
  const { template } = synth({
    githubRepo: 'acme@1234/llm@5678',
    githubBranch: 'release',
    githubOidcProviderArn: arn,
  });

  test('no provider is created and the role trusts the imported one', () => {
    template.resourceCountIs('AWS::IAM::OIDCProvider', 0);
    template.hasResourceProperties('AWS::IAM::Role', {
      AssumeRolePolicyDocument: {
        Statement: [Match.objectLike({ Principal: { Federated: arn } })],
      },
    });
  });

  test('the trust names the configured branch and the repository exactly as given', () => {
    template.hasResourceProperties('AWS::IAM::Role', {
      AssumeRolePolicyDocument: {
        Statement: [
          Match.objectLike({
            Condition: {
              StringEquals: Match.objectLike({
                'token.actions.githubusercontent.com:sub':
                  'repo:acme@1234/llm@5678:ref:refs/heads/release',
              }),
            },
          }),
        ],
      },
    });
  });
});

describe('registry layer without githubRepo', () => {
  const { template, report } = synth();

  test('no OIDC provider and no GitHub role are created', () => {
    template.resourceCountIs('AWS::IAM::OIDCProvider', 0);
    expect(JSON.stringify(template.toJSON())).not.toContain('AssumeRoleWithWebIdentity');
  });

  test('synth warns that GitHub Actions cannot push', () => {
    expect(report).toContain('githubRepo is not set: no GitHub OIDC role is created');
  });
});
