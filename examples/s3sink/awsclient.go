package main

import (
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
)

// newS3Client returns the S3 client for cfg. endpoint overrides the
// endpoint (AWS_ENDPOINT_URL_S3 is already applied by the SDK's default
// configuration loading); any non-AWS endpoint gets path-style addressing
// (http://host:port/bucket/key), because local S3 servers do not resolve
// bucket.host names.
func newS3Client(cfg aws.Config, endpoint string) *s3.Client {
	return s3.NewFromConfig(cfg, func(o *s3.Options) {
		if endpoint != "" {
			o.BaseEndpoint = aws.String(endpoint)
		}
		if o.BaseEndpoint != nil || cfg.BaseEndpoint != nil {
			o.UsePathStyle = true
		}
	})
}
