// Package sdktest helps test code written against package sdk:
//
//   - Given/When/Then scenarios for command handlers and aggregates, run
//     against a temp-dir embedded node, with diffs on failure;
//   - MemLog, an in-memory sdk.EventLog that can inject events of other
//     streams with any key (to provoke time travel);
//   - Conformance, the contract every sdk.EventLog passes;
//   - small helpers: Context, Collect, Receive, Eventually.
package sdktest
