/** The search attributes of docs/architecture.md §4, one list for the embedded server, `fetchquant setup` and docker-compose. */
import { defineSearchAttributeKey, SearchAttributeType } from '@temporalio/common';

export const SA = {
  BatchId: defineSearchAttributeKey('BatchId', SearchAttributeType.KEYWORD),
  Species: defineSearchAttributeKey('Species', SearchAttributeType.KEYWORD),
  RunAccession: defineSearchAttributeKey('RunAccession', SearchAttributeType.KEYWORD),
  SampleStage: defineSearchAttributeKey('SampleStage', SearchAttributeType.KEYWORD),
  WorkerHost: defineSearchAttributeKey('WorkerHost', SearchAttributeType.KEYWORD),
} as const;

export const SEARCH_ATTRIBUTE_NAMES = Object.keys(SA) as (keyof typeof SA)[];
