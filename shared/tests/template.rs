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
