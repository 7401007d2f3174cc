// Builds the dashboard into crates/herald-server/ui/, which the server embeds and serves at /ui on the admin
// listener. The built files are committed, so building Herald never needs Node; run this after changing src/.
import * as esbuild from "esbuild";
import { copyFileSync, mkdirSync } from "node:fs";
import { fileURLToPath } from "node:url";

const out = fileURLToPath(new URL("../crates/herald-server/ui/", import.meta.url));
mkdirSync(out, { recursive: true });
const common = { bundle: true, minify: true, legalComments: "none", logLevel: "warning" };
await esbuild.build({ ...common, entryPoints: ["src/main.ts"], format: "iife", target: "es2020", outfile: out + "app.js" });
await esbuild.build({ ...common, entryPoints: ["src/app.css"], outfile: out + "app.css" });
copyFileSync("src/index.html", out + "index.html");
console.log(`dashboard built into ${out}`);
