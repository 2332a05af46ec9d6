//! `recovery secrets split`: the move to `SecretsLayout=split`. It copies what the two
//! internet-facing functions read from the pipeline secret (`SECRETS_ARN`) into
//! webhook-ingest's (`WEBHOOK_SECRETS_ARN`: every `*_WEBHOOK_SECRETS` but the
//! form's, the form tools' `*_FIELD_MAP` and `HUBSPOT_WEBHOOK_URL`) and form-intake's
//! (`FORM_SECRETS_ARN`: `FORM_WEBHOOK_SECRETS`), the stack's
//! `OperatorEnvironment` naming all three. It adds to what the targets hold and never
//! overwrites a key they already have with another value (a conflict, named). The
//! pipeline secret keeps its keys: once split, only the queue consumers can read it.
//! It prints key names only, never a value.

use anyhow::{Context, bail};
use aws_sdk_secretsmanager::Client;
use aws_sdk_secretsmanager::error::DisplayErrorContext;
use serde_json::{Map, Value};

/// The one key form-intake reads.
pub const FORM_KEY: &str = "FORM_WEBHOOK_SECRETS";

/// Whether webhook-ingest reads `key`: the connectors' secrets and settings.
fn webhook_ingest_reads(key: &str) -> bool {
    (key.ends_with("_WEBHOOK_SECRETS") && key != FORM_KEY)
        || key.ends_with("_FIELD_MAP")
        || key == "HUBSPOT_WEBHOOK_URL"
}

/// What a split copies, or would.
#[derive(Debug, Default, Clone, PartialEq, serde::Serialize)]
pub struct SplitPlan {
    pub to_webhooks: Vec<String>,
    pub to_forms: Vec<String>,
    /// In their target already, with the same value.
    pub unchanged: Vec<String>,
    /// In their target with another value: left as the target has it.
    pub conflicts: Vec<String>,
}

impl SplitPlan {
    pub fn print(&self, out: &mut dyn std::io::Write, dry_run: bool) -> std::io::Result<()> {
        let verb = if dry_run { "would copy" } else { "copied" };
        let names = |keys: &[String]| {
            if keys.is_empty() {
                "nothing".to_string()
            } else {
                keys.join(", ")
            }
        };
        writeln!(
            out,
            "{verb} to WEBHOOK_SECRETS_ARN: {}",
            names(&self.to_webhooks)
        )?;
        writeln!(out, "{verb} to FORM_SECRETS_ARN: {}", names(&self.to_forms))?;
        if !self.unchanged.is_empty() {
            writeln!(out, "already there: {}", self.unchanged.join(", "))?;
        }
        if !self.conflicts.is_empty() {
            writeln!(
                out,
                "left alone, the target holds another value: {} (decide which is right, then set it by hand)",
                self.conflicts.join(", ")
            )?;
        }
        Ok(())
    }
}

/// Adds the keys of `pipeline` the two functions read to `webhooks` and `forms`.
pub fn plan(
    pipeline: &Map<String, Value>,
    webhooks: &mut Map<String, Value>,
    forms: &mut Map<String, Value>,
) -> SplitPlan {
    let mut plan = SplitPlan::default();
    for (key, value) in pipeline {
        let (target, copied) = if key == FORM_KEY {
            (&mut *forms, &mut plan.to_forms)
        } else if webhook_ingest_reads(key) {
            (&mut *webhooks, &mut plan.to_webhooks)
        } else {
            continue;
        };
        match target.get(key) {
            None => {
                target.insert(key.clone(), value.clone());
                copied.push(key.clone());
            }
            Some(existing) if existing == value => plan.unchanged.push(key.clone()),
            Some(_) => plan.conflicts.push(key.clone()),
        }
    }
    plan
}

async fn read(client: &Client, arn: &str) -> anyhow::Result<Map<String, Value>> {
    let answer = client
        .get_secret_value()
        .secret_id(arn)
        .send()
        .await
        .map_err(|e| anyhow::anyhow!("{}", DisplayErrorContext(e)))
        .with_context(|| format!("reading {arn}"))?;
    let text = answer.secret_string().unwrap_or("{}");
    match serde_json::from_str(if text.trim().is_empty() { "{}" } else { text }) {
        Ok(Value::Object(map)) => Ok(map),
        _ => bail!("{arn} is not a JSON object"),
    }
}

async fn write(client: &Client, arn: &str, map: &Map<String, Value>) -> anyhow::Result<()> {
    client
        .put_secret_value()
        .secret_id(arn)
        .secret_string(Value::Object(map.clone()).to_string())
        .send()
        .await
        .map_err(|e| anyhow::anyhow!("{}", DisplayErrorContext(e)))
        .with_context(|| format!("writing {arn}"))?;
    Ok(())
}

/// The three secrets' ARNs, from the environment the stack's `OperatorEnvironment`
/// output gives.
pub struct SplitTargets {
    pub pipeline: String,
    pub webhooks: String,
    pub forms: String,
}

impl SplitTargets {
    pub fn from_env(env: &shared::config::Env) -> anyhow::Result<Self> {
        let get = |key: &str| {
            env.get(key).with_context(|| {
                format!("{key} is not set: export the stack's OperatorEnvironment output")
            })
        };
        Ok(Self {
            pipeline: get("SECRETS_ARN")?,
            webhooks: get("WEBHOOK_SECRETS_ARN")?,
            forms: get("FORM_SECRETS_ARN")?,
        })
    }
}

/// Reads the three secrets and, unless `dry_run`, writes the targets that gain keys.
pub async fn split(
    client: &Client,
    targets: &SplitTargets,
    dry_run: bool,
) -> anyhow::Result<SplitPlan> {
    let pipeline = read(client, &targets.pipeline).await?;
    let mut webhooks = read(client, &targets.webhooks).await?;
    let mut forms = read(client, &targets.forms).await?;
    let plan = plan(&pipeline, &mut webhooks, &mut forms);
    if !dry_run {
        if !plan.to_webhooks.is_empty() {
            write(client, &targets.webhooks, &webhooks).await?;
        }
        if !plan.to_forms.is_empty() {
            write(client, &targets.forms, &forms).await?;
        }
    }
    Ok(plan)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn map(value: Value) -> Map<String, Value> {
        value.as_object().unwrap().clone()
    }

    #[test]
    fn the_signing_keys_go_to_their_function_and_nothing_is_overwritten() {
        let pipeline = map(json!({
            "SKIPUP_API_KEY": "sk_live_1",
            "HUBSPOT_ACCESS_TOKEN": "pat-1",
            "FORM_WEBHOOK_SECRETS": "whsec_form",
            "SKIPUP_WEBHOOK_SECRETS": "whsec_a,whsec_b",
            "TALLY_WEBHOOK_SECRETS": "whsec_tally",
            "CALCOM_WEBHOOK_SECRETS": "whsec_cal",
            "TALLY_FIELD_MAP": "company=Company name",
            "SUPPRESS_LIST": "competitor.example",
        }));
        let mut webhooks = map(
            json!({ "TALLY_WEBHOOK_SECRETS": "whsec_tally", "CALCOM_WEBHOOK_SECRETS": "whsec_other" }),
        );
        let mut forms = map(json!({}));
        let plan = plan(&pipeline, &mut webhooks, &mut forms);
        assert_eq!(
            plan.to_webhooks,
            ["SKIPUP_WEBHOOK_SECRETS", "TALLY_FIELD_MAP"]
        );
        assert_eq!(plan.to_forms, ["FORM_WEBHOOK_SECRETS"]);
        assert_eq!(plan.unchanged, ["TALLY_WEBHOOK_SECRETS"]);
        assert_eq!(plan.conflicts, ["CALCOM_WEBHOOK_SECRETS"]);
        assert_eq!(webhooks["CALCOM_WEBHOOK_SECRETS"], "whsec_other");
        assert_eq!(webhooks["SKIPUP_WEBHOOK_SECRETS"], "whsec_a,whsec_b");
        assert_eq!(forms, map(json!({ "FORM_WEBHOOK_SECRETS": "whsec_form" })));
        // The API keys and CRM credentials go to neither.
        for key in ["SKIPUP_API_KEY", "HUBSPOT_ACCESS_TOKEN", "SUPPRESS_LIST"] {
            assert!(!webhooks.contains_key(key) && !forms.contains_key(key));
        }
        let mut printed = Vec::new();
        plan.print(&mut printed, false).unwrap();
        let printed = String::from_utf8(printed).unwrap();
        assert!(!printed.contains("whsec_"), "names only: {printed}");
    }
}
