//! Properties of `template.yaml` that no linter asks for, read as text (the
//! template's `!Ref` tags are not plain YAML).

fn template() -> String {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../template.yaml");
    std::fs::read_to_string(path).expect("template.yaml is readable")
}

/// The lines of the top-level section `name`, with its nested keys.
fn section<'a>(template: &'a str, name: &str) -> Vec<&'a str> {
    template
        .lines()
        .skip_while(|l| *l != format!("{name}:"))
        .skip(1)
        .take_while(|l| l.is_empty() || l.starts_with(' '))
        .collect()
}

#[test]
fn every_function_is_traced_with_x_ray() {
    let template = template();
    let globals = section(&template, "Globals");
    let function: Vec<&str> = globals
        .iter()
        .skip_while(|l| **l != "  Function:")
        .skip(1)
        .take_while(|l| l.starts_with("    "))
        .copied()
        .collect();
    assert!(
        function.contains(&"    Tracing: Active"),
        "Globals.Function has no `Tracing: Active`: {function:?}"
    );
    // No function turns it off for itself.
    assert!(
        !template.contains("Tracing: PassThrough") && !template.contains("Tracing: Disabled"),
        "a function opts out of tracing"
    );
}

/// The lines of the resource `name` (under `Resources:`).
fn resource<'a>(template: &'a str, name: &str) -> Vec<&'a str> {
    template
        .lines()
        .skip_while(|l| *l != format!("  {name}:"))
        .skip(1)
        .take_while(|l| l.is_empty() || l.starts_with("    "))
        .collect()
}

#[test]
fn the_internet_facing_functions_can_reserve_concurrency_and_the_api_logs_each_source() {
    let template = template();
    for function in ["WebhookIngestFunction", "FormIntakeFunction"] {
        let lines = resource(&template, function);
        assert!(
            lines
                .iter()
                .any(|l| l.trim() == "ReservedConcurrentExecutions:"),
            "{function} has no ReservedConcurrentExecutions"
        );
    }
    assert!(template.contains("  HttpReservedConcurrency:"));
    let api = resource(&template, "HttpApi").join("\n");
    assert!(api.contains("AccessLogSettings:"), "{api}");
    assert!(api.contains("$context.identity.sourceIp"), "{api}");
}

#[test]
fn in_the_split_layout_each_internet_facing_function_reads_only_its_own_secret() {
    let template = template();
    assert!(template.contains("  SplitSecrets: !Equals [!Ref SecretsLayout, split]"));
    for (function, own) in [
        ("WebhookIngestFunction", "WebhookSigningSecrets"),
        ("FormIntakeFunction", "FormSigningSecrets"),
    ] {
        assert!(template.contains(&format!("  {own}:\n    Type: AWS::SecretsManager::Secret")));
        let lines = resource(&template, function);
        let secret_lines: Vec<&&str> = lines
            .iter()
            .filter(|l| l.contains("Secrets") && !l.trim_start().starts_with('#'))
            .collect();
        // Its SECRETS_ARN and its one GetSecretValue statement, both switched.
        assert_eq!(secret_lines.len(), 2, "{function}: {secret_lines:?}");
        for line in secret_lines {
            assert!(
                line.contains(&format!(
                    "!If [SplitSecrets, !Ref {own}, !Ref PipelineSecrets]"
                )),
                "{function}: {line}"
            );
        }
        assert!(
            !lines
                .iter()
                .any(|l| l.contains("AWSSecretsManagerGetSecretValuePolicy")),
            "{function} reads a secret unconditionally"
        );
    }
    // The other functions never read the signing secrets.
    for function in [
        "RecoveryCheckFunction",
        "ApplyEventsFunction",
        "WebhookHealthFunction",
    ] {
        let lines = resource(&template, function).join("\n");
        assert!(!lines.is_empty(), "{function} exists");
        assert!(
            !lines.contains("WebhookSigningSecrets") && !lines.contains("FormSigningSecrets"),
            "{function}"
        );
    }
}
