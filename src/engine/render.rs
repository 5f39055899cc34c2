//! Rendering weir's folders, on every core: for gathering (the folder a record implies, to
//! compare with the one at the head) and for executing (the folder a step writes).
//!
//! Deterministic and pure in effect: it renders what it is given and must never choose what
//! to render.

use crate::core::control::CONTROL_FILE;
use crate::core::record::State;
use crate::core::spec::Canary;
use crate::repo::kustomize::AppSource;
use crate::repo::objects::{Dir, ObjectId};
use crate::repo::render::Templates;

/// One folder to render: the Canary, its selector, the record, the primary's source, the
/// source the canary is built from now, and the control file's text.
pub(super) type RenderJob<'a> = Option<(
    &'a Canary,
    &'a crate::repo::kustomize::Selector,
    &'a State,
    &'a AppSource,
    &'a AppSource,
    Option<String>,
)>;

/// Renders weir's folder for each job on every core, with its id; `None` for no job.
pub(super) fn render_all(
    templates: &Templates,
    jobs: Vec<RenderJob>,
) -> Vec<Option<Result<(Dir, ObjectId), crate::repo::render::RenderError>>> {
    let render = |job: &RenderJob| {
        job.as_ref()
            .map(|(canary, selector, state, primary, current, control)| {
                templates
                    .render_owned(canary, selector, state, primary, current)
                    .map(|mut dir| {
                        // The control file is people's, carried as it is.
                        if let Some(text) = control {
                            dir.file(CONTROL_FILE, text.clone());
                        }
                        let id = dir.id();
                        (dir, id)
                    })
            })
    };
    let work = jobs.iter().filter(|j| j.is_some()).count();
    let threads = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
        .min(8);
    if work < 64 || threads < 2 {
        return jobs.iter().map(render).collect();
    }
    let chunk = jobs.len().div_ceil(threads);
    std::thread::scope(|scope| {
        let handles: Vec<_> = jobs
            .chunks(chunk)
            .map(|part| scope.spawn(move || part.iter().map(render).collect::<Vec<_>>()))
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().expect("rendering does not panic"))
            .collect()
    })
}
