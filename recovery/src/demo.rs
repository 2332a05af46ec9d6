//! `recovery demo`: the README's first command. Starts the local stack with the
//! SkipUp sandbox at second-scale delays, submits a realistic sample of leads (one
//! form posted twice, prospects who book on their own, a rep who is not a SkipUp
//! member, a lead that enters through Skode, a SkipCalls call), and the booking rules
//! at work: a Calendly booking made before the form (nobody is contacted), a Cal.com
//! booking after SkipUp's outreach began (its conversation is stopped), a booking that
//! is cancelled before the check (the lead is recovered after all), and conversations
//! whose webhooks the sandbox drops (reconciliation sets them right). It prints each
//! status change as it happens, then the funnel and every timeline. Exits 0 once
//! every lead reached an outcome, 1 if one did not within the time limit.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use anyhow::bail;
use serde_json::{Value, json};
use shared::config::Env;
use shared::lead::{Lead, LeadStatus};
use shared::report::Funnel;
use skipup_sandbox::{ConversationConfig, HubSpotConfig, SalesforceConfig, SandboxConfig};

use crate::simulate::{Sender, send};
use crate::stack::{Options, Stack, first_secret, local_defaults};

/// How long the demo waits for every outcome.
const LIMIT: Duration = Duration::from_secs(60);

struct Prospect {
    name: &'static str,
    email: &'static str,
    company: &'static str,
    rep: Option<&'static str>,
}

const PROSPECTS: [Prospect; 11] = [
    Prospect {
        name: "Dana Ruiz",
        email: "dana.ruiz@northwind.example",
        company: "Northwind",
        rep: Some("alex.morgan@vendor.example"),
    },
    Prospect {
        name: "Sam Lee",
        email: "sam.lee@acme.example",
        company: "Acme",
        rep: Some("alex.morgan@vendor.example"),
    },
    Prospect {
        name: "Lee Chen",
        email: "lee.chen@initech.example",
        company: "Initech",
        rep: Some("jordan.price@vendor.example"),
    },
    Prospect {
        name: "Morgan Blake",
        email: "morgan.blake@umbrella.example",
        company: "Umbrella",
        rep: None,
    },
    Prospect {
        name: "Avery Kim",
        email: "avery.kim@hooli.example",
        company: "Hooli",
        rep: None,
    },
    Prospect {
        name: "Riley Park",
        email: "riley.park@stark.example",
        company: "Stark Industries",
        rep: Some("alex.morgan@vendor.example"),
    },
    Prospect {
        name: "Jamie Fox",
        email: "jamie.fox@wayne.example",
        company: "Wayne Enterprises",
        rep: None,
    },
    Prospect {
        name: "Casey Moore",
        email: "casey.moore@cyberdyne.example",
        company: "Cyberdyne",
        rep: None,
    },
    // Books through the team's Calendly link from a routing form, before the form's
    // own webhook arrives.
    Prospect {
        name: "Quinn Adler",
        email: "quinn.adler@oscorp.example",
        company: "Oscorp",
        rep: None,
    },
    // Books through Cal.com after SkipUp's first email.
    Prospect {
        name: "Harper Diaz",
        email: "harper.diaz@massive.example",
        company: "Massive Dynamic",
        rep: None,
    },
    // Books, then cancels before the check: dropped off again.
    Prospect {
        name: "Rowan Gray",
        email: "rowan.gray@vandelay.example",
        company: "Vandelay",
        rep: None,
    },
];

const QUINN: usize = 8;
const HARPER: usize = 9;
const ROWAN: usize = 10;

/// The demo's settings over the process environment: a 2-second recovery delay.
pub fn options(port: u16) -> Options {
    let mut defaults: HashMap<&str, String> = local_defaults().into_iter().collect();
    defaults.insert("RECOVERY_DELAY_SECONDS", "2".into());
    // Reconciliation every 2 s for recoveries SkipUp was quiet about for 4 s.
    defaults.insert("RECONCILE_AFTER_SECONDS", "4".into());
    defaults.insert("RECONCILE_INTERVAL_SECONDS", "2".into());
    defaults.insert("RECONCILE_REQUESTS_PER_MINUTE", "600".into());
    Options {
        port,
        env: Env::process().with_defaults(defaults),
        sandbox: SandboxConfig {
            members: vec![
                "owner@vendor.example".into(),
                "alex.morgan@vendor.example".into(),
            ],
            conversation: ConversationConfig {
                step: Duration::from_millis(1200),
                // Each conversation waits until the demo lets it go (as soon as it
                // sees the request); Harper's until the pipeline has stopped it, so
                // her booking after outreach always lands mid-conversation.
                held: true,
                follow_up_odds: 0.5,
                booked_odds: 0.7,
                // A quarter of SkipUp's webhooks never arrive, as when an endpoint
                // is disabled: reconciliation repairs those leads.
                drop_webhooks: 0.25,
                retry_unit: Duration::from_millis(200),
                ..ConversationConfig::default()
            },
            ..SandboxConfig::default()
        },
        hubspot: Some(HubSpotConfig::default()),
        salesforce: Some(SalesforceConfig::default()),
        retry_scale: 30.0,
        workers: 4,
        sdk: None,
        allow_aws: false,
        controls: Default::default(),
    }
}

/// Settings that would point the demo at a real CRM: it writes sample prospects.
const REAL_CRM: [&str; 3] = [
    "HUBSPOT_ACCESS_TOKEN",
    "HUBSPOT_BASE_URL",
    "SALESFORCE_INSTANCE_URL",
];

pub async fn run(port: u16) -> anyhow::Result<()> {
    let options = options(port);
    if let Some(var) = REAL_CRM.iter().find(|v| options.env.get(v).is_some()) {
        bail!(
            "{var} is set: the demo writes sample prospects and runs against its own HubSpot and Salesforce doubles; unset it"
        );
    }
    let env = options.env.clone();
    let stack = Stack::start(options).await?;
    let http = reqwest::Client::new();
    let started = Instant::now();
    println!(
        "Local stack on {} ({}); SkipUp sandbox at {}.",
        stack.url(),
        stack.description(),
        stack
            .sandbox()
            .map_or("SKIPUP_BASE_URL".to_string(), |s| s.base_url())
    );
    println!("Recovery checks run 2 s after each submission.\n");

    let deliver = |sender: Sender, path: &'static str, body: Value| {
        let secret = first_secret(&env, sender.secret_variable()).unwrap_or_default();
        let url = format!("{}{path}", stack.url());
        let http = http.clone();
        async move {
            let bytes = serde_json::to_vec(&body).expect("JSON");
            send(&http, sender, &url, &secret, &bytes).await
        }
    };
    let tool = |name: &str| -> Sender { name.parse().expect("a connector") };

    println!("== a booking before its form");
    let calendly = json!({ "event": "invitee.created", "created_at": "2026-12-01T10:00:00.000000Z",
        "payload": { "email": PROSPECTS[QUINN].email, "name": PROSPECTS[QUINN].name,
            "uri": "https://api.calendly.com/scheduled_events/EVDEMO/invitees/INVDEMO",
            "scheduled_event": { "uri": "https://api.calendly.com/scheduled_events/EVDEMO",
                "start_time": "2026-12-10T15:00:00.000000Z" } } });
    let (status, _) = deliver(tool("calendly"), "/webhooks/calendly", calendly).await?;
    println!(
        "  Calendly invitee.created {status}  Quinn Adler books from a routing form; the form's webhook comes later\n"
    );

    println!("== prospects submit the demo form");
    let mut names = HashMap::new();
    for (i, p) in PROSPECTS.iter().enumerate() {
        let mut form = json!({ "email": p.email, "name": p.name, "company": p.company,
            "submission_id": format!("sub_demo_{i}"), "form_id": "demo-request", "source": "website",
            "answers": { "What do you want to see?": "Forecasting" } });
        if let Some(rep) = p.rep {
            form["assigned_rep_email"] = json!(rep);
        }
        if i == 0 {
            form["phone"] = json!("+1 415 555 0142");
        }
        let copies = if i == 0 { 2 } else { 1 };
        for copy in 0..copies {
            let (status, answer) = deliver(Sender::Form, "/forms", form.clone()).await?;
            let answer: Value = serde_json::from_str(&answer).unwrap_or_default();
            let lead_id = answer["lead_id"].as_str().unwrap_or("?").to_string();
            names.insert(lead_id.clone(), p.name);
            let again = if copy > 0 {
                " (the form tool retried)"
            } else {
                ""
            };
            println!(
                "  POST /forms {status}  {:<13} {:<18} {lead_id} {}{again}",
                p.name,
                p.company,
                answer["status"].as_str().unwrap_or("?")
            );
            if status != 202 {
                bail!("the form was refused: {answer}");
            }
        }
    }
    let mut skode = Sender::SKODE.sample_json();
    skode["id"] = json!("evt_demo_skode_1");
    let (status, _) = deliver(Sender::SKODE, "/webhooks/skode", skode).await?;
    println!("  Skode lead.created {status}  Priya Natarajan (Globex) enters through the CRM");
    // The form tools' own webhooks, signed as each tool signs (their fixtures).
    for (name, who) in [
        ("typeform", "Taylor Nguyen (Soylent) answers a Typeform"),
        ("tally", "Jordan Ellis (Tyrell) answers a Tally form"),
    ] {
        let sender = tool(name);
        let route: &'static str = if name == "typeform" {
            "/webhooks/typeform"
        } else {
            "/webhooks/tally"
        };
        let (status, _) = deliver(sender, route, sender.sample_json()).await?;
        println!("  {name} form response {status}  {who}");
        if status != 200 {
            bail!("the {name} delivery was refused");
        }
    }

    println!("\n== bookings before the check");
    let own = json!({ "id": "evt_demo_own_1", "type": "meeting_request.booked",
        "data": { "id": "mr_OWNLINK0000000000000001", "participant_emails": [PROSPECTS[6].email], "status": "booked" } });
    let (status, _) = deliver(Sender::SKIPUP, "/webhooks/skipup", own).await?;
    println!("  SkipUp booked {status}  Jamie Fox booked through the rep's own scheduling link");
    let updated = json!({ "id": "evt_demo_skode_2", "event": "lead.updated",
        "data": { "id": "lead_cm0042", "email": PROSPECTS[7].email, "status": "meeting_booked" } });
    let (status, _) = deliver(Sender::SKODE, "/webhooks/skode", updated).await?;
    println!("  Skode lead.updated {status}  Casey Moore marked meeting_booked in the CRM");
    let (status, _) = deliver(
        Sender::SKIPCALLS,
        "/webhooks/skipcalls",
        Sender::SKIPCALLS.sample_json(),
    )
    .await?;
    println!("  SkipCalls CALL_COMPLETED {status}  a call with Dana Ruiz");
    let rowan = |event: &str| {
        json!({ "email": PROSPECTS[ROWAN].email, "event": event,
            "booking_id": "cp_demo_1", "start_at": "2026-12-11T16:00:00Z" })
    };
    let (status, _) = deliver(tool("bookings"), "/webhooks/bookings", rowan("booked")).await?;
    println!("  booking booked {status}  Rowan Gray books through Chili Piper (the generic route)");

    println!("\n== the pipeline works (status changes as they happen)");
    let mut seen: HashMap<String, LeadStatus> = HashMap::new();
    let mut released: std::collections::HashSet<String> = Default::default();
    let mut harper_booked = false;
    let mut rowan_cancelled = false;
    let done = loop {
        let leads = stack.leads().await?;
        let harper = leads
            .iter()
            .find(|l| l.profile.email.as_str() == PROSPECTS[HARPER].email);
        let rowan_booked = leads.iter().any(|l| {
            l.profile.email.as_str() == PROSPECTS[ROWAN].email
                && l.status == LeadStatus::BookedDirectly
        });
        if !rowan_cancelled && rowan_booked {
            rowan_cancelled = true;
            let (status, _) =
                deliver(tool("bookings"), "/webhooks/bookings", rowan("cancelled")).await?;
            println!("  booking cancelled {status}  Rowan Gray cancels: dropped off again");
        }
        if !harper_booked && harper.is_some_and(|l| l.meeting_request_id.is_some()) {
            harper_booked = true;
            let calcom = json!({ "triggerEvent": "BOOKING_CREATED", "createdAt": "2026-12-01T10:05:00.000Z",
                "payload": { "uid": "caldemo1", "startTime": "2026-12-12T15:00:00Z",
                    "attendees": [{ "email": PROSPECTS[HARPER].email, "name": PROSPECTS[HARPER].name }] } });
            let (status, _) = deliver(tool("calcom"), "/webhooks/calcom", calcom).await?;
            println!(
                "  Cal.com BOOKING_CREATED {status}  Harper Diaz books on their own after SkipUp's first email"
            );
        }
        if let Some(sandbox) = stack.sandbox() {
            for lead in leads.iter().filter(|l| l.meeting_request_id.is_some()) {
                let email = lead.profile.email.as_str();
                // Harper's conversation goes on once the pipeline has stopped it.
                let stopped = lead
                    .skipup_cancel
                    .as_ref()
                    .is_some_and(|c| c.done_at.is_some());
                if (email != PROSPECTS[HARPER].email || stopped) && released.insert(email.into()) {
                    sandbox.release(email);
                }
            }
        }
        for lead in &leads {
            if seen.get(lead.id.as_str()) != Some(&lead.status) {
                let from = seen.insert(lead.id.to_string(), lead.status);
                let name = names
                    .get(lead.id.as_str())
                    .copied()
                    .unwrap_or(lead.profile.name.as_str());
                match from {
                    Some(from) => println!(
                        "  +{:>4.1}s  {name:<16} {from} -> {}",
                        started.elapsed().as_secs_f64(),
                        lead.status
                    ),
                    None => println!(
                        "  +{:>4.1}s  {name:<16} {}",
                        started.elapsed().as_secs_f64(),
                        lead.status
                    ),
                }
            }
        }
        let playing = stack.sandbox().map_or(0, |s| s.conversations_playing());
        // Finished, and the CRMs told of it.
        let told = |l: &Lead| l.crm_status == Some(l.status);
        if leads.len() > PROSPECTS.len()
            && playing == 0
            && leads.iter().all(|l| finished(l) && told(l))
        {
            break true;
        }
        if started.elapsed() > LIMIT {
            break false;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };

    let leads = stack.leads().await?;
    print_funnel(&Funnel::of(&leads));
    println!("\n== timelines");
    for lead in &leads {
        println!(
            "\n  {} {} ({}): {}",
            lead.id,
            lead.profile.name,
            lead.profile.company.as_deref().unwrap_or("-"),
            lead.status
        );
        for entry in stack.timeline(&lead.id).await? {
            println!(
                "    {}  {:<18} {}",
                entry.at.format("%H:%M:%S%.3f"),
                entry.status.map_or(String::new(), |s| s.to_string()),
                entry.detail
            );
        }
    }
    print_crms(&stack, &leads);
    if let Some(sandbox) = stack.sandbox() {
        let dropped = sandbox.dropped().len();
        let stopped: usize = sandbox.cancels().values().sum();
        let mut reconciled = Vec::new();
        for lead in &leads {
            if stack
                .timeline(&lead.id)
                .await?
                .iter()
                .any(|e| e.event_id.starts_with("reconcile:"))
            {
                reconciled.push(lead.profile.name.as_str());
            }
        }
        println!(
            "\nSkipUp's webhooks dropped: {dropped}; leads set right by reconciliation: {}; conversations stopped by the pipeline: {stopped}.",
            if reconciled.is_empty() {
                "none".to_string()
            } else {
                reconciled.join(", ")
            }
        );
    }
    let dead = stack.dead_letters().await;
    if !done {
        bail!(
            "not every lead reached an outcome within {} s",
            LIMIT.as_secs()
        );
    }
    if dead > 0 {
        bail!("{dead} messages ended in a dead-letter queue");
    }
    println!(
        "\nEvery lead reached an outcome in {:.1} s. Try it yourself: `cargo run -p recovery -- local`.",
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

/// Nothing more will happen to this lead in the demo.
fn finished(lead: &Lead) -> bool {
    !matches!(
        lead.status,
        LeadStatus::Submitted | LeadStatus::MeetingRequested | LeadStatus::FollowUpSent
    )
}

/// What each lead's status became in the HubSpot and Salesforce doubles.
fn print_crms(stack: &Stack, leads: &[Lead]) {
    let (Some(hubspot), Some(salesforce)) = (stack.hubspot(), stack.salesforce()) else {
        return;
    };
    println!(
        "\n== the CRMs (HubSpot's contact property `lead_recovery_status` and notes, Salesforce's Lead Status and Tasks)"
    );
    for lead in leads {
        let email = lead.profile.email.as_str();
        let property = hubspot
            .contact(email)
            .and_then(|c| c.properties.get("lead_recovery_status").cloned())
            .and_then(|v| v.as_str().map(str::to_string))
            .unwrap_or_else(|| "-".into());
        let status = salesforce
            .lead(email)
            .map_or_else(|| "-".into(), |l| l.status);
        println!(
            "  {:<16} {:<18} HubSpot {:<17} notes {}   Salesforce {:<22} Tasks {}",
            lead.profile.name,
            lead.status.to_string(),
            property,
            hubspot.notes_of(email).len(),
            status,
            salesforce.tasks_of(email).len()
        );
    }
}

fn print_funnel(funnel: &Funnel) {
    println!("\n== funnel");
    for (label, count) in [
        ("submitted", funnel.submitted),
        ("booked directly", funnel.booked_directly),
        ("meeting requested", funnel.requested),
        ("  meeting scheduled", funnel.scheduled),
        ("  re-entered nurture", funnel.re_entered_nurture),
        ("recovery failed", funnel.failed),
        ("still waiting", funnel.waiting),
    ] {
        println!("  {label:<22} {count:>3}");
    }
    println!(
        "  {:<22} {:>5.1}%",
        "booking rate",
        funnel.booking_rate * 100.0
    );
}
