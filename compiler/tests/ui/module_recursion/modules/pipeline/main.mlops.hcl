variable "features" {}

variable "label" {}

module "retraining" {
  source = "../retraining"

  features = var.features
  label    = var.label
}
