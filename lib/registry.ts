import { Annotations, Duration, RemovalPolicy } from 'aws-cdk-lib';
import * as ecr from 'aws-cdk-lib/aws-ecr';
import * as iam from 'aws-cdk-lib/aws-iam';
import { Construct } from 'constructs';
import { acknowledgeCheckov, acknowledgeFinding, acknowledgeGrantPolicy } from './nag';

/** GitHub Actions' OIDC issuer and the audience its tokens carry for AWS. */
export const GITHUB_OIDC_HOST = 'token.actions.githubusercontent.com';
export const GITHUB_OIDC_AUDIENCE = 'sts.amazonaws.com';
/** The moving tag the image workflow pushes next to the git sha; the stack deploys it by default. */
export const MOVING_IMAGE_TAG = 'latest';

export interface TrainingRegistryProps {
  /**
   * GitHub repository (`owner/name`) whose workflow may push the trainer image.
   * @default - no GitHub role is created (synth warns)
   */
  readonly githubRepo?: string;
  /**
   * The only branch whose workflow runs may assume the GitHub role.
   * @default 'main'
   */
  readonly githubBranch?: string;
  /**
   * ARN of the account's existing GitHub OIDC provider (an account holds only one per URL).
   * @default - a new provider is created
   */
  readonly githubOidcProviderArn?: string;
  /**
   * Tagged images kept in the repository; older ones are expired.
   * @default 30
   */
  readonly maxImageCount?: number;
  /**
   * Keep the repository and its images when the stack is deleted.
   * @default true
   */
  readonly retainImages?: boolean;
}

/**
 * The registry layer: the ECR repository of the trainer image and the role GitHub Actions
 * assumes (through OIDC, no static keys) to push to it.
 *
 * Tag immutability: every tag is immutable except `latest`, the moving tag the workflow pushes
 * with each build next to the immutable git-sha tag; deploy with `-c imageTag=<sha>` to pin.
 */
export class TrainingRegistry extends Construct {
  public readonly repository: ecr.IRepository;
  /** Assumable only by `repo:<githubRepo>:ref:refs/heads/<githubBranch>`; absent without githubRepo. */
  public readonly githubRole?: iam.IRole;

  constructor(scope: Construct, id: string, props: TrainingRegistryProps = {}) {
    super(scope, id);
    const branch = props.githubBranch ?? 'main';
    const maxImageCount = props.maxImageCount ?? 30;
    const retainImages = props.retainImages ?? true;

    const repository = new ecr.Repository(this, 'TrainerRepository', {
      imageScanOnPush: true,
      imageTagMutability: ecr.TagMutability.IMMUTABLE_WITH_EXCLUSION,
      imageTagMutabilityExclusionFilters: [
        ecr.ImageTagMutabilityExclusionFilter.wildcard(MOVING_IMAGE_TAG),
      ],
      encryption: ecr.RepositoryEncryption.AES_256,
      // Images are rebuildable from git, but a running or resumable run needs its image.
      removalPolicy: retainImages ? RemovalPolicy.RETAIN : RemovalPolicy.DESTROY,
      emptyOnDelete: !retainImages,
      lifecycleRules: [
        {
          description: 'Untagged layers of superseded builds',
          tagStatus: ecr.TagStatus.UNTAGGED,
          maxImageAge: Duration.days(7),
        },
        { description: `Keep the newest ${maxImageCount} images`, maxImageCount },
      ],
    });
    acknowledgeCheckov(
      repository,
      'CKV_AWS_136',
      'AES-256 with ECR-managed keys: the image holds code, not data, and a customer key would ' +
        'add cost and grants for every puller.',
    );
    acknowledgeCheckov(
      repository,
      'CKV_AWS_51',
      'Every tag is immutable but `latest`, the moving one; a run pins the digest its tag named ' +
        'at its first start, so no run changes image.',
    );
    this.repository = repository;

    if (props.githubRepo === undefined) {
      Annotations.of(this).addWarningV2(
        'tuning-lab:no-github-role',
        'githubRepo is not set: no GitHub OIDC role is created, so GitHub Actions cannot push ' +
          'the trainer image (deploy with -c githubRepo=owner/name to add it).',
      );
      return;
    }

    const provider =
      props.githubOidcProviderArn === undefined
        ? new iam.OidcProviderNative(this, 'GitHubOidcProvider', {
            url: `https://${GITHUB_OIDC_HOST}`,
            clientIds: [GITHUB_OIDC_AUDIENCE],
          })
        : iam.OidcProviderNative.fromOidcProviderArn(
            this,
            'GitHubOidcProvider',
            props.githubOidcProviderArn,
          );

    const role = new iam.Role(this, 'GitHubImageRole', {
      description: `GitHub Actions of ${props.githubRepo} (${branch}) push the trainer image`,
      maxSessionDuration: Duration.hours(1),
      assumedBy: new iam.WebIdentityPrincipal(provider.oidcProviderArn, {
        StringEquals: {
          [`${GITHUB_OIDC_HOST}:aud`]: GITHUB_OIDC_AUDIENCE,
          [`${GITHUB_OIDC_HOST}:sub`]: `repo:${props.githubRepo}:ref:refs/heads/${branch}`,
        },
      }),
    });
    repository.grantPullPush(role);
    // The workflow skips a commit whose image exists (git-sha tags are immutable): without this a
    // re-run cannot tell "exists" from "denied" and fails on the push.
    repository.grant(role, 'ecr:DescribeImages');
    this.githubRole = role;
    const policy = role.node.findChild('DefaultPolicy');
    acknowledgeFinding(
      policy,
      'AwsSolutions::AwsSolutions-IAM5[Resource::*]',
      'ecr:GetAuthorizationToken has no resource-level permissions; push and pull name the ' +
        'one repository.',
    );
    acknowledgeGrantPolicy(policy);
  }
}
