// node mjml.mjs FILE.mjml -> the official MJML's HTML on stdout (validation: soft)
import { readFileSync } from "node:fs";
import mjml2html from "mjml";

const result = await mjml2html(readFileSync(process.argv[2], "utf8"), { validationLevel: "soft" });
process.stdout.write(result.html);
