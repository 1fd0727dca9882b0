/**
 * A protobuf Duration of whole days (namespace retention). The SDK's own converter (msToTs) is internal
 * (@hidden); protobufjs, which every @temporalio package shares (package.json pins it), builds the Long.
 * Its Long interface and the `long` package's declare the same class twice, hence the one cast.
 */
import protobuf from 'protobufjs';
import type { google } from '@temporalio/proto';

export function daysDuration(days: number): google.protobuf.IDuration {
  return { seconds: protobuf.util.LongBits.fromNumber(Math.round(days * 86_400)).toLong(), nanos: 0 } as unknown as google.protobuf.IDuration;
}
