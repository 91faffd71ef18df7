//! A tenant's set-up: settings, modules, generators and mail templates, one at a time
//! or all at once from a manifest.

use std::collections::HashSet;
use std::path::Path;

use serde_json::Value;

use super::Tenant;
use crate::error::Error;
use crate::event::Invocation;
use crate::generators::{Generator, ModelDescription};
use crate::limits::Limits;
use crate::mail::{self, Rendered, check_template};
use crate::manifest::{ApplyReport, Manifest};
use crate::modules::{ModuleChange, ModuleSpec, ModuleSummary};
use crate::registration::context_source;
use crate::send::Destinations;
use crate::settings::TenantSettings;

impl Tenant {
    /// The tenant's settings (limits, retry policy, mails, outputs).
    pub fn settings(&self) -> Result<TenantSettings, Error> {
        self.store.settings()
    }

    /// Replaces the tenant's settings.
    pub fn set_settings(&mut self, settings: &TenantSettings) -> Result<(), Error> {
        settings.validate()?;
        self.store.put_settings(settings)
    }

    /// Changes some of the tenant's settings: `patch` is a JSON merge patch on their
    /// JSON ([`TenantSettings::patched`]), such as `{"mail": {"from": "Team
    /// <team@example.com>"}}`. The result is checked as a manifest's settings are
    /// (limits, addresses) and its transports as `outbox send` would use them, before
    /// it is kept; returns it.
    pub fn patch_settings(&mut self, patch: &Value) -> Result<TenantSettings, Error> {
        let settings = self.store.settings()?.patched(patch)?;
        Destinations::new(&settings, None, [])?;
        self.set_settings(&settings)?;
        Ok(settings)
    }

    /// Registers a module, or replaces one of the same name when `replace` is set.
    /// Everything is checked before anything is stored.
    pub fn add_module(&mut self, spec: ModuleSpec, replace: bool) -> Result<ModuleChange, Error> {
        let tenant_limits = self.store.settings()?.limits;
        let prepared = self.modules.prepare(spec, &tenant_limits)?;
        self.modules.install(&mut *self.store, prepared, replace)
    }

    /// Unregisters a module. Its dead letters stay, kept by name, for a module
    /// registered under that name later.
    pub fn remove_module(&mut self, name: &str) -> Result<(), Error> {
        self.modules.remove(&mut *self.store, name)
    }

    /// The registered modules in registration order, with their effective limits.
    pub fn modules(&self) -> Result<Vec<ModuleSummary>, Error> {
        let tenant_limits = self.store.settings()?.limits;
        Ok(self
            .store
            .modules()?
            .into_iter()
            .map(|registration| ModuleSummary {
                limits: Limits::layered(&tenant_limits, &registration.limits),
                registration,
            })
            .collect())
    }

    /// Defines a generator, or replaces one of the same name when `replace` is set.
    pub fn add_generator(&mut self, generator: Generator, replace: bool) -> Result<(), Error> {
        let exists = self
            .store
            .generators()?
            .iter()
            .any(|existing| existing.name == generator.name);
        if exists && !replace {
            return Err(Error::GeneratorExists(generator.name));
        }
        self.store.put_generator(&generator)
    }

    /// The generators, in name order.
    pub fn generators(&self) -> Result<Vec<Generator>, Error> {
        self.store.generators()
    }

    /// One generator.
    pub fn generator(&self, name: &str) -> Result<Generator, Error> {
        self.store
            .generators()?
            .into_iter()
            .find(|generator| generator.name == name)
            .ok_or_else(|| Error::UnknownGenerator(name.to_owned()))
    }

    /// Removes a generator.
    pub fn remove_generator(&mut self, name: &str) -> Result<(), Error> {
        if self.store.remove_generator(name)? {
            Ok(())
        } else {
            Err(Error::UnknownGenerator(name.to_owned()))
        }
    }

    /// Turns a generator on or off.
    pub fn set_generator_active(&mut self, name: &str, active: bool) -> Result<(), Error> {
        let mut generator = self.generator(name)?;
        generator.active = active;
        self.store.put_generator(&generator)
    }

    /// What conditions of generators on `model` can test: the variables its context
    /// module describes (asked at logical time `now_ms`), or a stored record's fields.
    pub fn describe_model(&mut self, model: &str, now_ms: i64) -> Result<ModelDescription, Error> {
        self.require_model(model)?;
        let Some(registration) = context_source(self.store.modules()?, model) else {
            let sample = self.store.records(model, None, 1)?;
            let json = sample.first().map(|(_, record)| record.json.as_str());
            return Ok(ModelDescription::of_record(json));
        };
        let limits = Limits::layered(&self.store.settings()?.limits, &registration.limits);
        let inv = Invocation {
            tenant: self.name.clone(),
            now_ms,
            attempt: 1,
        };
        let variables = self
            .modules
            .context_variables(&registration, &limits, model, &inv)?;
        Ok(ModelDescription::Module {
            module: registration.name,
            variables,
        })
    }

    /// Saves the mail template of an exact event group, after checking its syntax.
    pub fn set_template(&mut self, group: &str, source: &str) -> Result<(), Error> {
        check_template(source).map_err(|why| Error::InvalidTemplate {
            group: group.to_owned(),
            why,
        })?;
        self.store.put_template(group, source)
    }

    /// The mail templates, as (group, source), in group order.
    pub fn templates(&self) -> Result<Vec<(String, String)>, Error> {
        self.store.templates()
    }

    /// The template of one group.
    pub fn template(&self, group: &str) -> Result<String, Error> {
        self.store
            .templates()?
            .into_iter()
            .find(|(name, _)| name == group)
            .map(|(_, source)| source)
            .ok_or_else(|| Error::UnknownTemplate(group.to_owned()))
    }

    /// Removes the template of a group.
    pub fn remove_template(&mut self, group: &str) -> Result<(), Error> {
        if self.store.remove_template(group)? {
            Ok(())
        } else {
            Err(Error::UnknownTemplate(group.to_owned()))
        }
    }

    /// The subject and body the template of `group` renders for `context`, or why it
    /// does not render.
    pub fn preview(&self, group: &str, context: &Value) -> Result<Rendered, Error> {
        mail::preview(self.modules.engine(), group, self.template(group)?, context)
    }

    /// Makes this tenant match `manifest`, read from `path` (module paths are relative
    /// to its directory): declared modules are added or replaced (in the file's order),
    /// modules and generators not declared are removed, generators and settings are
    /// replaced. Nothing changes unless everything in it checks out.
    pub fn apply(&mut self, manifest: &Manifest, path: &Path) -> Result<ApplyReport, Error> {
        self.apply_showing(manifest, path, &mut |_, _, _| {})
    }

    /// [`apply`](Self::apply), telling `checking` each module's name and place (n of
    /// all) before it is checked and compiled, the slow part: for a progress line.
    pub fn apply_showing(
        &mut self,
        manifest: &Manifest,
        path: &Path,
        checking: &mut dyn FnMut(&str, usize, usize),
    ) -> Result<ApplyReport, Error> {
        let setup = manifest.resolve(path, &mut self.modules, checking)?;
        self.set_settings(&setup.settings)?;
        let mut report = ApplyReport::default();
        let declared: HashSet<&str> = manifest.modules.iter().map(|m| m.name.as_str()).collect();
        for module in self.store.modules()? {
            if !declared.contains(module.name.as_str()) {
                self.remove_module(&module.name)?;
                report.removed.push(module.name);
            }
        }
        for module in setup.modules {
            let name = module.name().to_owned();
            let change = self.modules.install(&mut *self.store, module, true)?;
            report.modules.push((name, change));
        }
        let declared: HashSet<&str> = setup.generators.iter().map(|g| g.name.as_str()).collect();
        for existing in self.generators()? {
            if !declared.contains(existing.name.as_str()) {
                self.remove_generator(&existing.name)?;
                report.removed_generators.push(existing.name);
            }
        }
        for generator in setup.generators {
            report.generators.push(generator.name.clone());
            self.add_generator(generator, true)?;
        }
        if let Some(templates) = setup.templates {
            let declared: HashSet<&str> =
                templates.iter().map(|(group, _)| group.as_str()).collect();
            for (group, _) in self.templates()? {
                if !declared.contains(group.as_str()) {
                    self.remove_template(&group)?;
                }
            }
            for (group, source) in &templates {
                self.set_template(group, source)?;
                report.templates.push(group.clone());
            }
        }
        Ok(report)
    }
}
