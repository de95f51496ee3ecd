import { Match } from 'aws-cdk-lib/assertions';
import { synth } from './support/synth';

describe('storage layer', () => {
  const { template, stack } = synth();
  const buckets = template.findResources('AWS::S3::Bucket');
  const ids = {
    data: stack.resolve(
      (stack.storage.dataBucket.node.defaultChild as never as { logicalId: string }).logicalId,
    ),
    outputs: stack.resolve(
      (stack.storage.outputsBucket.node.defaultChild as never as { logicalId: string }).logicalId,
    ),
    logs: stack.resolve(
      (stack.storage.accessLogsBucket.node.defaultChild as never as { logicalId: string })
        .logicalId,
    ),
  };

  test('three buckets: data, outputs, access logs', () => {
    expect(Object.keys(buckets).sort()).toEqual([ids.data, ids.outputs, ids.logs].sort());
  });

  test('every bucket is encrypted at rest', () => {
    for (const bucket of Object.values(buckets)) {
      expect(bucket.Properties.BucketEncryption).toEqual({
        ServerSideEncryptionConfiguration: [
          { ServerSideEncryptionByDefault: { SSEAlgorithm: 'AES256' } },
        ],
      });
    }
  });

  test('every bucket blocks all public access', () => {
    for (const bucket of Object.values(buckets)) {
      expect(bucket.Properties.PublicAccessBlockConfiguration).toEqual({
        BlockPublicAcls: true,
        BlockPublicPolicy: true,
        IgnorePublicAcls: true,
        RestrictPublicBuckets: true,
      });
    }
  });

  test('every bucket is versioned', () => {
    for (const bucket of Object.values(buckets)) {
      expect(bucket.Properties.VersioningConfiguration).toEqual({ Status: 'Enabled' });
    }
  });

  test('every bucket denies requests without TLS 1.2', () => {
    for (const id of Object.values(ids)) {
      template.hasResourceProperties('AWS::S3::BucketPolicy', {
        Bucket: { Ref: id },
        PolicyDocument: {
          Statement: Match.arrayWith([
            Match.objectLike({
              Effect: 'Deny',
              Principal: { AWS: '*' },
              Action: 's3:*',
              Condition: { Bool: { 'aws:SecureTransport': 'false' } },
            }),
            Match.objectLike({
              Effect: 'Deny',
              Condition: { NumericLessThan: { 's3:TlsVersion': 1.2 } },
            }),
          ]),
        },
      });
    }
  });

  test('every bucket aborts incomplete multipart uploads and expires noncurrent versions', () => {
    for (const bucket of Object.values(buckets)) {
      expect(bucket.Properties.LifecycleConfiguration.Rules).toEqual(
        expect.arrayContaining([
          expect.objectContaining({
            AbortIncompleteMultipartUpload: { DaysAfterInitiation: 7 },
            Status: 'Enabled',
          }),
          expect.objectContaining({
            NoncurrentVersionExpiration: { NoncurrentDays: 30 },
            Status: 'Enabled',
          }),
        ]),
      );
    }
  });

  test('data and outputs buckets log access to the access-log bucket', () => {
    for (const id of [ids.data, ids.outputs]) {
      expect(buckets[id].Properties.LoggingConfiguration).toEqual({
        DestinationBucketName: { Ref: ids.logs },
        LogFilePrefix: expect.stringMatching(/-bucket\/$/),
      });
    }
  });

  test('buckets are retained when the stack is deleted by default', () => {
    for (const bucket of Object.values(buckets)) {
      expect(bucket.DeletionPolicy).toBe('Retain');
      expect(bucket.UpdateReplacePolicy).toBe('Retain');
    }
  });

  test('no custom resource empties buckets (the emulated deploy cannot run one)', () => {
    expect(JSON.stringify(template.toJSON())).not.toMatch(/Custom::S3AutoDeleteObjects/);
  });
});

describe('storage layer with retainData=false', () => {
  const { template } = synth({ retainData: 'false' });

  test('buckets are deleted with the stack', () => {
    for (const bucket of Object.values(template.findResources('AWS::S3::Bucket'))) {
      expect(bucket.DeletionPolicy).toBe('Delete');
    }
  });
});
