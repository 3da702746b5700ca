//! The stand-ins' own behaviours over real HTTP: what each scripted fault answers (Google's
//! bodies), that latency is applied, and the Runtime API's hand-outs, holds and reports (in
//! `runtime_api`), and the smoke runner's verdicts (in `smoke`).

mod gemini;
mod runtime_api;
mod smoke;
