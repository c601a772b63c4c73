# Drift-triggered retraining for one endpoint: a monitor that compares the endpoint's traffic with
# the training reference, and a retrain policy that reruns the job when the monitor breaches (or on
# a schedule) and promotes the candidate through the endpoint's rollout only if it beats
# production. Instantiate it once per endpoint with a `module` block (with `for_each` for many).

variable "endpoint" {
  description = "The endpoint to watch and to promote through: endpoint.<name> (or endpoint.<name>[key])."
}

variable "job" {
  description = "The training job the endpoint serves: training_job.<name>."
}

variable "drift_features" {
  description = "Features of the model compared against the training reference; \"prediction\" for scores."
  type        = list(string)

  validation {
    condition     = length(var.drift_features) > 0
    error_message = "drift_features must name at least one feature."
  }
}

variable "drift_method" {
  type    = string
  default = "psi"

  validation {
    condition     = contains(["psi", "ks", "js", "chi2", "wasserstein"], var.drift_method)
    error_message = "drift_method must be one of psi, ks, js, chi2, wasserstein."
  }
}

variable "drift_threshold" {
  type    = number
  default = 0.2
}

variable "window" {
  description = "Time window each drift judgement covers."
  type        = string
  default     = "1h"
}

variable "min_samples" {
  type    = number
  default = 500
}

variable "schedule" {
  description = "Also retrain on this cron schedule; null for drift-triggered retraining only."
  type        = string
  default     = null
}

variable "cooldown" {
  description = "Least time between two retrains; at least the window."
  type        = string
  default     = "6h"
}

variable "max_runs_per_day" {
  type    = number
  default = 2
}

variable "compare" {
  description = "Metric the candidate and production are compared on."
  type        = string
  default     = "auc"
}

variable "min_gain" {
  description = "How much the candidate must beat production by to be promoted."
  type        = number
  default     = 0
}

monitor "drift" {
  endpoint    = var.endpoint
  window      = var.window
  min_samples = var.min_samples
  description = "Input and score drift against the training reference."

  drift {
    features  = var.drift_features
    method    = var.drift_method
    threshold = var.drift_threshold
  }
}

retrain_policy "retrain" {
  job      = var.job
  on       = [monitor.drift]
  schedule = var.schedule
  cooldown = var.cooldown

  budget {
    max_runs = var.max_runs_per_day
    per      = "24h"
  }

  promote {
    compare  = var.compare
    min_gain = var.min_gain
    via      = var.endpoint
  }
}

output "monitor" {
  value = monitor.drift
}

output "policy" {
  value = retrain_policy.retrain
}

output "status" {
  value = monitor.drift.status
}
