// Package retry is aiwatt's one retry helper for calls to other services:
// it reads the server's Retry-After (delay-seconds, an HTTP date, and
// Azure's x-ms-retry-after-ms), computes exponential backoff with optional
// full jitter that never waits less than the server asked, and runs a call
// under that policy with a sleep that ends with its context.
//
// The carbon providers (carbon/, whose chain leaves a rate-limited provider
// alone until its Retry-After), the cloud-provider pulls (cloud/) and the
// report upload (report/) use it. It must not import other aiwatt packages.
package retry
