// Copies the files that /docs needs, unchanged, from the installed (locked)
// swagger-ui-dist into swagger-ui/, or into the directory given as the first
// argument (the Go test compares such a copy with the committed one).
// Run it through `npm run vendor`, which installs the locked version first.
import { copyFileSync, mkdirSync, rmSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";

// The bundle and its stylesheet, and the licences that must travel with
// them: Swagger UI's own (LICENSE, NOTICE) and those of the code bundled
// into swagger-ui-bundle.js.
const files = [
  "swagger-ui-bundle.js",
  "swagger-ui-bundle.js.LICENSE.txt",
  "swagger-ui.css",
  "LICENSE",
  "NOTICE",
];

const here = fileURLToPath(new URL(".", import.meta.url));
const from = join(here, "node_modules", "swagger-ui-dist");
const to = process.argv[2] ?? join(here, "swagger-ui");

rmSync(to, { recursive: true, force: true });
mkdirSync(to, { recursive: true });
for (const f of files) {
  copyFileSync(join(from, f), join(to, f));
}
console.log(`copied ${files.length} files from ${from} to ${to}`);
