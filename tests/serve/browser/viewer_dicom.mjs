// The viewer with DICOM files in a real browser (chromium via playwright-core):
// a dropped .dcm study is analysed, every image (frames included) is drawn
// from the server's rendering (?image=1), and the page is photographed.
// Usage: node viewer_dicom.mjs BASE_URL SCREENSHOT.png FILE.dcm...
import { readFileSync } from "node:fs";
import { chromium } from "playwright-core";

const [base, shot, ...files] = process.argv.slice(2);
let failed = 0;
function check(name, ok, detail = "") {
  if (ok) console.log(`PASS ${name}`);
  else { failed++; console.log(`FAIL ${name}: ${detail}`); }
}
const browser = await chromium.launch({
  executablePath: process.env.MSKX_CHROMIUM || "/usr/bin/chromium",
  headless: true,
  args: ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
         "--disable-sync", "--no-first-run", "--disable-quic"],
});
try {
  const page = await browser.newPage({ viewport: { width: 1440, height: 860 }, deviceScaleFactor: 1 });
  const problems = [];
  page.on("pageerror", (e) => problems.push(String(e)));
  page.on("console", (m) => { if (m.type() === "error") problems.push(m.text()); });
  await page.goto(base + "/", { waitUntil: "load" });
  await page.setInputFiles("#files", files);
  await page.waitForSelector("#result:not([hidden])", { timeout: 20000 });
  await page.waitForFunction(() => [...document.querySelectorAll("img.base")].every((i) => i.complete && i.naturalWidth > 0),
                             null, { timeout: 10000 });
  const bases = await page.$$eval("img.base", (l) => l.map((i) => i.src.slice(0, 22)));
  const fd = new FormData();
  for (const p of files) fd.append("images", new Blob([readFileSync(p)], { type: "application/dicom" }), p.split("/").pop());
  const ref = await (await fetch(`${base}/v1/predict`, { method: "POST", body: fd })).json();
  check("viewer_dicom_images", bases.length === ref.images.length && bases.every((s) => s === "data:image/png;base64,"),
        JSON.stringify(bases));
  const shown = await page.textContent("#probability");
  check("viewer_dicom_probability", shown.startsWith((100 * ref.probability).toFixed(1) + "%"), `${shown} vs ${ref.probability}`);
  check("viewer_dicom_no_errors", problems.length === 0, problems.join("; "));
  await page.screenshot({ path: shot });
} finally {
  await browser.close();
}
process.exit(failed ? 1 : 0);
