// node doiuse.mjs FILE.html CLIENTS -> {"errors": [...], "notes": [...]} from caniemail's data
import { readFileSync } from "node:fs";
import { doIUseEmail } from "doiuse-email";

const [file, clients] = process.argv.slice(2);
const result = doIUseEmail(readFileSync(file, "utf8"), { emailClients: clients.split(",") });
process.stdout.write(JSON.stringify({ errors: result.errors ?? [], notes: result.notes ?? [] }));
