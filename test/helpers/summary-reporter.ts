import type { Reporter, TestModule } from "vitest/node";

/** Ends the run with the line CI reads: "N passed, N failed". */
export default class SummaryReporter implements Reporter {
  onTestRunEnd(testModules: ReadonlyArray<TestModule>, unhandledErrors: ReadonlyArray<unknown>): void {
    let passed = 0;
    let failed = unhandledErrors.length;
    for (const module of testModules) {
      let failedTests = 0;
      for (const test of module.children.allTests()) {
        const state = test.result().state;
        if (state === "passed") passed++;
        else if (state === "failed") failedTests++;
      }
      // A file that failed outside its tests (import error, failing beforeAll) counts as one failure.
      failed += module.state() === "failed" && failedTests === 0 ? 1 : failedTests;
    }
    process.stdout.write(`\n${passed} passed, ${failed} failed\n`);
  }
}
