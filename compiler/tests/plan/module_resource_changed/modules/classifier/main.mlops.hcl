# A small tabular classifier: an XGBoost job with a quality gate, served by a canary endpoint.

variable "features" {
  type = list(any)
}

variable "label" {}

variable "max_depth" {
  type    = number
  default = 6
}

variable "min_auc" {
  type    = number
  default = 0.85
}

variable "replicas" {
  type    = number
  default = 1
}

training_job "model" {
  features = var.features
  label    = var.label

  params = {
    objective = "binary:logistic"
    max_depth = var.max_depth
    eta       = 0.1
    rounds    = 200
  }

  gate {
    metric = "auc"
    min    = var.min_auc
  }
}

endpoint "api" {
  model    = training_job.model
  replicas = var.replicas

  rollout {
    strategy = "canary"
    steps    = [10, 50, 100]
    interval = "10m"

    rollback {
      metric = "error_rate"
      above  = 0.02
    }
  }
}

output "endpoint" {
  value = endpoint.api
}
