// cert-manager.mjs: validates cert-manager resources against the OpenAPI schemas of
// cert-manager's own CRDs, as @kubernetes-models/cert-manager compiles them (types, required
// fields, enums, formats of Certificate and Issuer in cert-manager.io/v1).
//
// Driven by tests/interop/test_deploy_webhook.py. Those schemas leave unknown fields open (the API
// server prunes them), so a misspelt field is not caught here; the Python test checks the fields
// it relies on by name.
//
// Usage: node cert-manager.mjs FILE...   (multi-document YAML)
// Prints "ok KIND NAME" per resource; on a failure prints "invalid KIND NAME: ..." and exits 1.
import { readFileSync } from "node:fs";
import { load } from "js-yaml";
import { Certificate, Issuer } from "@kubernetes-models/cert-manager/cert-manager.io/v1";

const models = { Certificate, Issuer };
let failed = false;
for (const file of process.argv.slice(2)) {
  const docs = readFileSync(file, "utf8").split(/^---$/m).map((text) => load(text)).filter(Boolean);
  for (const doc of docs) {
    const Model = models[doc.kind];
    const name = `${doc.kind} ${doc.metadata?.name}`;
    if (doc.apiVersion !== "cert-manager.io/v1" || !Model) {
      console.log(`invalid ${name}: not a cert-manager.io/v1 Certificate or Issuer`);
      failed = true;
      continue;
    }
    try {
      new Model(doc).validate();
      console.log(`ok ${name}`);
    } catch (error) {
      console.log(`invalid ${name}: ${error.message}`);
      failed = true;
    }
  }
}
process.exit(failed ? 1 : 0);
