/**
 * What every command shares: the stack's name and outputs, the AWS clients, the output helpers.
 *
 * Region and credentials come from the chain the AWS CLI uses: `--region`, else `AWS_REGION`,
 * else `AWS_DEFAULT_REGION`, else the profile's region; `--profile` or `AWS_PROFILE` picks the
 * profile, and the SDK's default credential chain does the rest. The SDK honours
 * `AWS_ENDPOINT_URL` (and `AWS_ENDPOINT_URL_<SERVICE>`) by itself, so every command works
 * against the emulator as against AWS; S3 then uses path-style addresses (a loopback endpoint
 * has no bucket subdomains). Clients are made on first use and counted per call.
 */
import { AutoScalingClient } from '@aws-sdk/client-auto-scaling';
import { CloudFormationClient, DescribeStacksCommand } from '@aws-sdk/client-cloudformation';
import { CloudWatchLogsClient } from '@aws-sdk/client-cloudwatch-logs';
import { BudgetsClient } from '@aws-sdk/client-budgets';
import { EC2Client } from '@aws-sdk/client-ec2';
import { ECRClient } from '@aws-sdk/client-ecr';
import { S3Client } from '@aws-sdk/client-s3';
import { SageMakerClient } from '@aws-sdk/client-sagemaker';
import { ServiceQuotasClient } from '@aws-sdk/client-service-quotas';
import { SNSClient } from '@aws-sdk/client-sns';
import { SSMClient } from '@aws-sdk/client-ssm';
import { STSClient } from '@aws-sdk/client-sts';
import { DEFAULT_STACK_NAME, STACK_OUTPUTS, type StackOutputName } from '../lib/contract';
import { CliFailure } from './errors';
import type { Output } from './output';

/** AWS calls made so far, by `Service.Operation` (each logical call once, retries not). */
export class CallCounter {
  readonly byOperation = new Map<string, number>();

  record(operation: string): void {
    this.byOperation.set(operation, (this.byOperation.get(operation) ?? 0) + 1);
  }

  get total(): number {
    return [...this.byOperation.values()].reduce((sum, n) => sum + n, 0);
  }
}

export interface AwsSettings {
  readonly region?: string;
  readonly profile?: string;
}

export interface StackInfo {
  readonly name: string;
  /** CloudFormation's id of this deployment of the stack (its ARN). */
  readonly id: string;
  readonly status: string;
  readonly outputs: Readonly<Record<string, string>>;
}

interface Client {
  middlewareStack: {
    add(middleware: unknown, options: { step: 'initialize'; name: string }): void;
  };
  destroy(): void;
}

export class CliContext {
  readonly calls = new CallCounter();
  private readonly clients = new Map<string, unknown>();
  private stackInfo?: Promise<StackInfo>;

  constructor(
    readonly out: Output,
    readonly stackName: string = DEFAULT_STACK_NAME,
    readonly aws: AwsSettings = {},
    /** The clock the commands read (tests pin it). */
    readonly now: () => Date = () => new Date(),
    readonly env: Readonly<Record<string, string | undefined>> = process.env,
  ) {}

  /** `--region`, AWS_REGION, AWS_DEFAULT_REGION; undefined: the SDK reads the profile's. */
  get configuredRegion(): string | undefined {
    return this.aws.region || this.env.AWS_REGION || this.env.AWS_DEFAULT_REGION || undefined;
  }

  /** Whether an endpoint override is set (the emulator): S3 then needs path-style addresses. */
  get customEndpoint(): boolean {
    return Boolean(this.env.AWS_ENDPOINT_URL || this.env.AWS_ENDPOINT_URL_S3);
  }

  get s3(): S3Client {
    return this.client(
      's3',
      (config) => new S3Client({ ...config, forcePathStyle: this.customEndpoint }),
    );
  }

  get cloudformation(): CloudFormationClient {
    return this.client('cloudformation', (config) => new CloudFormationClient(config));
  }

  get autoscaling(): AutoScalingClient {
    return this.client('autoscaling', (config) => new AutoScalingClient(config));
  }

  get ec2(): EC2Client {
    return this.client('ec2', (config) => new EC2Client(config));
  }

  get logs(): CloudWatchLogsClient {
    return this.client('logs', (config) => new CloudWatchLogsClient(config));
  }

  get sns(): SNSClient {
    return this.client('sns', (config) => new SNSClient(config));
  }

  // For stop (the caller's identity) and doctor (quotas, bootstrap and AMI parameters, the
  // image, the budget); sweep reads the run settings parameter.
  get sts(): STSClient {
    return this.client('sts', (config) => new STSClient(config));
  }

  get serviceQuotas(): ServiceQuotasClient {
    return this.client('service-quotas', (config) => new ServiceQuotasClient(config));
  }

  get ssm(): SSMClient {
    return this.client('ssm', (config) => new SSMClient(config));
  }

  get ecr(): ECRClient {
    return this.client('ecr', (config) => new ECRClient(config));
  }

  // For stop and logs of a run on the SageMaker backend (its training jobs).
  get sagemaker(): SageMakerClient {
    return this.client('sagemaker', (config) => new SageMakerClient(config));
  }

  /** AWS Budgets is global: its endpoint is in us-east-1 whatever the stack's region. */
  get budgets(): BudgetsClient {
    return this.client(
      'budgets',
      (config) => new BudgetsClient({ ...config, region: 'us-east-1' }),
    );
  }

  /** Closes every client's connections (the process, or a test, can end at once). */
  close(): void {
    for (const client of this.clients.values()) (client as Client).destroy();
    this.clients.clear();
  }

  /** The region the clients use, as resolved (flag, environment or profile). */
  async region(): Promise<string> {
    return this.s3.config.region();
  }

  /** The stack's status and outputs (one DescribeStacks per command run). */
  stack(): Promise<StackInfo> {
    this.stackInfo ??= this.describeStack();
    return this.stackInfo;
  }

  /** One output of the stack; a CliFailure naming it when the stack lacks it. */
  async output(name: StackOutputName): Promise<string> {
    const value = await this.optionalOutput(name);
    if (value === undefined) {
      throw new CliFailure(
        `stack ${this.stackName} has no output ${STACK_OUTPUTS[name]}: is it deployed from this ` +
          `version of tuning-lab? (npx cdk deploy ${this.stackName})`,
      );
    }
    return value;
  }

  async optionalOutput(name: StackOutputName): Promise<string | undefined> {
    return (await this.stack()).outputs[STACK_OUTPUTS[name]];
  }

  private async describeStack(): Promise<StackInfo> {
    try {
      const found = await this.cloudformation.send(
        new DescribeStacksCommand({ StackName: this.stackName }),
      );
      const stack = found.Stacks?.[0];
      const outputs: Record<string, string> = {};
      for (const output of stack?.Outputs ?? []) {
        if (output.OutputKey && output.OutputValue !== undefined) {
          outputs[output.OutputKey] = output.OutputValue;
        }
      }
      return {
        name: this.stackName,
        id: stack?.StackId ?? '',
        status: stack?.StackStatus ?? 'UNKNOWN',
        outputs,
      };
    } catch (error) {
      if (
        (error as Error).name === 'ValidationError' &&
        /does not exist/.test((error as Error).message)
      ) {
        const region = await this.region().catch(() => '?');
        throw new CliFailure(
          `stack ${this.stackName} does not exist in ${region}: deploy it (npx cdk deploy ` +
            `${this.stackName}), or name another with --stack or --region`,
        );
      }
      throw error;
    }
  }

  private client<T extends Client>(
    service: string,
    make: (config: { region?: string; profile?: string; maxAttempts: number }) => T,
  ): T {
    let client = this.clients.get(service) as T | undefined;
    if (!client) {
      client = make({ region: this.configuredRegion, profile: this.aws.profile, maxAttempts: 5 });
      const counter = this.calls;
      client.middlewareStack.add(
        (
          next: (args: unknown) => Promise<unknown>,
          context: { clientName?: string; commandName?: string },
        ) =>
          (args: unknown) => {
            const name = (context.clientName ?? service).replace(/Client$/, '');
            counter.record(`${name}.${(context.commandName ?? '?').replace(/Command$/, '')}`);
            return next(args);
          },
        { step: 'initialize', name: 'tuningLabCallCounter' },
      );
      this.clients.set(service, client);
    }
    return client;
  }
}
