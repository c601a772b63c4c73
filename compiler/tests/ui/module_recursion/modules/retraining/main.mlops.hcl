variable "features" {}

variable "label" {}

# Meant to reuse the training job, but instantiates the pipeline again.
module "pipeline" {
  source = "../pipeline"

  features = var.features
  label    = var.label
}
