// End-to-end test of the mskx serve viewer in a real browser: Debian's
// chromium driven by playwright-core. Prints one PASS/FAIL line per check.
// Usage: node viewer_test.mjs BASE_URL SCREENSHOT.png BAD_IMAGE IMAGE... [--also COPY.png]
import { readFileSync, copyFileSync } from "node:fs";
import { basename } from "node:path";
import { chromium } from "playwright-core";

const args = process.argv.slice(2);
let copyTo = null;
const at = args.indexOf("--also");
if (at >= 0) copyTo = args.splice(at, 2)[1];
const [base, shot, badImage, ...images] = args;
if (!base || !shot || !badImage || images.length < 1) {
  console.log("FAIL browser_usage: node viewer_test.mjs BASE_URL SCREENSHOT.png BAD_IMAGE IMAGE...");
  process.exit(1);
}
const origin = new URL(base).origin;
let failed = 0;
function check(name, ok, detail = "") {
  if (ok) console.log(`PASS ${name}`);
  else { failed++; console.log(`FAIL ${name}: ${detail}`); }
}

// The reference: the same study straight through the API.
async function apiPredict() {
  const fd = new FormData();
  for (const p of images) fd.append("images", new Blob([readFileSync(p)], { type: "image/png" }), basename(p));
  const r = await fetch(`${base}/v1/predict?cam=1`, { method: "POST", body: fd });
  return r.json();
}

const browser = await chromium.launch({
  executablePath: process.env.MSKX_CHROMIUM || "/usr/bin/chromium",
  headless: true,
  args: ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
         "--disable-sync", "--no-first-run", "--disable-quic"],
});
try {
  const page = await browser.newPage({ viewport: { width: 1440, height: 860 }, deviceScaleFactor: 1 });
  const problems = [], outside = [];
  page.on("console", (m) => { if (m.type() === "error") problems.push(m.text()); });
  page.on("pageerror", (e) => problems.push(String(e)));
  page.on("request", (r) => { if (!r.url().startsWith(origin) && !r.url().startsWith("data:") && !r.url().startsWith("blob:")) outside.push(r.url()); });

  await page.goto(base + "/", { waitUntil: "load" });
  const model = await (await fetch(`${base}/v1/model`)).json();
  await page.waitForFunction(() => document.getElementById("model-arch").textContent.length > 1, null, { timeout: 10000 });
  check("browser_model_details", (await page.textContent("#model-arch")) === model.arch &&
        (await page.textContent("#model-file")) === model.file, await page.textContent("#model"));
  check("browser_health_shown", (await page.textContent("#health")).includes("ready"), await page.textContent("#health"));
  check("browser_disclaimer", /research tool/i.test(await page.textContent(".disclaimer")) &&
        /synthetic phantoms/i.test(await page.textContent(".disclaimer")));

  await page.setInputFiles("#files", images);
  await page.waitForSelector("#result:not([hidden])", { timeout: 20000 });
  await page.waitForFunction((n) => [...document.querySelectorAll("img.heat")].filter((i) => i.complete && i.naturalWidth > 0).length === n,
                             images.length, { timeout: 10000 });
  const ref = await apiPredict();
  const shown = await page.textContent("#probability");
  check("browser_probability", shown.startsWith((100 * ref.probability).toFixed(1) + "%"), `shown '${shown}', API ${ref.probability}`);
  const decision = (await page.textContent("#decision")).trim().toLowerCase();
  check("browser_decision", decision === ref.decision, `shown '${decision}', API ${ref.decision}`);
  const heat = await page.$$eval("img.heat", (els) => els.map((e) => ({ src: e.src.slice(0, 22), w: e.naturalWidth, h: e.naturalHeight })));
  const bases = await page.$$eval("img.base", (els) => els.map((e) => ({ w: e.naturalWidth, h: e.naturalHeight })));
  check("browser_overlays_are_data_png", heat.length === images.length && heat.every((h) => h.src === "data:image/png;base64,"),
        JSON.stringify(heat));
  check("browser_overlays_match_image_sizes", bases.length === heat.length && heat.every((h, i) => h.w === bases[i].w && h.h === bases[i].h),
        JSON.stringify({ heat, bases }));
  const captions = await page.$$eval("figcaption .p", (els) => els.map((e) => e.textContent));
  check("browser_image_probabilities", captions.length === ref.images.length &&
        captions.every((c, i) => c === (100 * ref.images[i].probability).toFixed(1) + "%"), JSON.stringify(captions));

  const styles = () => page.$$eval("img.heat", (els) => els.map((e) => getComputedStyle(e)).map((s) => [s.visibility, s.opacity]));
  await page.uncheck("#overlay-toggle");
  check("browser_toggle_hides", (await styles()).every(([v]) => v === "hidden"), JSON.stringify(await styles()));
  await page.check("#overlay-toggle");
  check("browser_toggle_shows", (await styles()).every(([v]) => v === "visible"), JSON.stringify(await styles()));
  await page.focus("#overlay-opacity");   // 45% + 7 steps of 5% by keyboard
  for (let i = 0; i < 7; i++) await page.keyboard.press("ArrowRight");
  await page.waitForTimeout(400);   // the opacity transition takes 0.12 s
  check("browser_fade", (await styles()).every(([v, o]) => v === "visible" && Math.abs(Number(o) - 0.8) < 1e-6) &&
        (await page.textContent("#opacity-out")) === "80%", JSON.stringify(await styles()));
  for (let i = 0; i < 4; i++) await page.keyboard.press("ArrowLeft");
  await page.evaluate(() => document.activeElement.blur());   // no focus ring in the picture
  await page.waitForTimeout(200);
  await page.screenshot({ path: shot });
  if (copyTo) copyFileSync(shot, copyTo);
  check("browser_screenshot", readFileSync(shot).length > 10000);

  await page.click("#images figure:first-child button.view");
  check("browser_enlarge", await page.$eval("#images figure:first-child", (f) => f.classList.contains("large")));

  // A file that is not an image: the server's error appears, nothing breaks.
  await page.setInputFiles("#files", [badImage]);
  await page.waitForSelector("#error:not([hidden])", { timeout: 10000 });
  const err = await page.textContent("#error");
  check("browser_bad_image_error", /could not analyze/i.test(err) && err.includes(basename(badImage)), err);
  check("browser_no_outside_requests", outside.length === 0, outside.join(" "));
  // The failed upload's 400 is logged by chromium as a console error; nothing else may be.
  const unexpected = problems.filter((p) => !/status of 400/.test(p));
  check("browser_no_console_errors", unexpected.length === 0, unexpected.join(" | "));
} catch (e) {
  check("browser_run", false, String(e && e.stack ? e.stack : e).slice(0, 600));
} finally {
  await browser.close();
}
process.exit(failed ? 1 : 0);
