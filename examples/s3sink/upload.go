package main

import (
	"bytes"
	"context"
	"fmt"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
)

// S3 is the part of *s3.Client the sink uses, with the client's exact
// signatures, so the real client (against AWS or any S3 API server) or a
// wrapper around it plugs in.
type S3 interface {
	PutObject(ctx context.Context, in *s3.PutObjectInput, optFns ...func(*s3.Options)) (*s3.PutObjectOutput, error)
	CreateMultipartUpload(ctx context.Context, in *s3.CreateMultipartUploadInput, optFns ...func(*s3.Options)) (*s3.CreateMultipartUploadOutput, error)
	UploadPart(ctx context.Context, in *s3.UploadPartInput, optFns ...func(*s3.Options)) (*s3.UploadPartOutput, error)
	CompleteMultipartUpload(ctx context.Context, in *s3.CompleteMultipartUploadInput, optFns ...func(*s3.Options)) (*s3.CompleteMultipartUploadOutput, error)
	AbortMultipartUpload(ctx context.Context, in *s3.AbortMultipartUploadInput, optFns ...func(*s3.Options)) (*s3.AbortMultipartUploadOutput, error)
	DeleteObject(ctx context.Context, in *s3.DeleteObjectInput, optFns ...func(*s3.Options)) (*s3.DeleteObjectOutput, error)
}

// abortTimeout bounds the abort of a failed multipart upload, which runs
// even after the caller's context ended.
const abortTimeout = 30 * time.Second

// upload writes body to key: one PutObject up to partSize, a multipart
// upload above. Writing the same key again replaces the object whole (S3
// never shows a half-written object), which is what makes a successor's
// rewrite after a crash safe. A failed multipart upload is aborted so its
// parts are not billed forever.
func upload(ctx context.Context, c S3, bucket, key, contentType string, body []byte, partSize int64) error {
	if int64(len(body)) <= partSize {
		_, err := c.PutObject(ctx, &s3.PutObjectInput{
			Bucket: aws.String(bucket), Key: aws.String(key), ContentType: aws.String(contentType),
			Body: bytes.NewReader(body), ContentLength: aws.Int64(int64(len(body))),
		})
		if err != nil {
			return fmt.Errorf("s3sink: put s3://%s/%s: %w", bucket, key, err)
		}
		return nil
	}
	created, err := c.CreateMultipartUpload(ctx, &s3.CreateMultipartUploadInput{
		Bucket: aws.String(bucket), Key: aws.String(key), ContentType: aws.String(contentType),
	})
	if err != nil {
		return fmt.Errorf("s3sink: create multipart upload s3://%s/%s: %w", bucket, key, err)
	}
	fail := func(err error) error {
		// The abort must run even when ctx is what failed, but not for
		// ever: a hung endpoint would hold the shard's processor, and the
		// consumer's Shutdown with it. Parts of an upload the abort missed
		// are S3's lifecycle rule's (AbortIncompleteMultipartUpload).
		actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), abortTimeout)
		defer cancel()
		_, aerr := c.AbortMultipartUpload(actx, &s3.AbortMultipartUploadInput{
			Bucket: aws.String(bucket), Key: aws.String(key), UploadId: created.UploadId,
		})
		if aerr != nil {
			return fmt.Errorf("s3sink: multipart upload s3://%s/%s: %w (abort failed too: %v)", bucket, key, err, aerr)
		}
		return fmt.Errorf("s3sink: multipart upload s3://%s/%s: %w", bucket, key, err)
	}
	var parts []types.CompletedPart
	for off, n := int64(0), int32(1); off < int64(len(body)); off, n = off+partSize, n+1 {
		part := body[off:min(off+partSize, int64(len(body)))]
		out, err := c.UploadPart(ctx, &s3.UploadPartInput{
			Bucket: aws.String(bucket), Key: aws.String(key), UploadId: created.UploadId,
			PartNumber: aws.Int32(n), Body: bytes.NewReader(part), ContentLength: aws.Int64(int64(len(part))),
		})
		if err != nil {
			return fail(fmt.Errorf("part %d: %w", n, err))
		}
		parts = append(parts, types.CompletedPart{ETag: out.ETag, PartNumber: aws.Int32(n)})
	}
	_, err = c.CompleteMultipartUpload(ctx, &s3.CompleteMultipartUploadInput{
		Bucket: aws.String(bucket), Key: aws.String(key), UploadId: created.UploadId,
		MultipartUpload: &types.CompletedMultipartUpload{Parts: parts},
	})
	if err != nil {
		return fail(fmt.Errorf("complete: %w", err))
	}
	return nil
}

// remove deletes key; deleting a key that does not exist succeeds, so a
// repeated removal is harmless.
func remove(ctx context.Context, c S3, bucket, key string) error {
	if _, err := c.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: aws.String(bucket), Key: aws.String(key)}); err != nil {
		return fmt.Errorf("s3sink: delete s3://%s/%s: %w", bucket, key, err)
	}
	return nil
}
