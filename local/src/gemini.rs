//! `gemini-stand-in`: the Gemini stand-in of `qgen-standins` on a given port, for the scripts
//! that run the real function binaries (`scripts/check-invoke`): every call is answered with
//! exactly the questions its [`qgen_contract::prompt::PromptData`] asks for, as a careful model
//! would, and logged (`answered generateContent topic=… num_questions=…`).

use qgen_standins::{AnswersAsAsked, GeminiStandIn, LogsCalls};

/// The stand-in on `listener`, answering until dropped. It keeps no copy of the calls: it runs
/// as long as the stack does.
pub async fn stand_in(listener: std::net::TcpListener) -> GeminiStandIn {
    GeminiStandIn::builder()
        .listener(listener)
        .forget_calls()
        .start(LogsCalls(AnswersAsAsked))
        .await
}
