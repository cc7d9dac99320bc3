/** Bench: workqueue (not measured yet). */
import type { Scenario } from "./harness.js";

export const scenarios: Scenario[] = [];
export const children = {};
