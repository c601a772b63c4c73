//! The stable diagnostic codes: one constant per finding, and [`ALL`] with a one-line summary
//! of each (the language reference lists them; a test keeps the two in step).

macro_rules! codes {
    ($(#[doc = $doc:literal] $ident:ident = $name:literal;)*) => {
        $(#[doc = $doc] pub const $ident: &str = $name;)*
        /// Every code with its summary, in the order defined.
        pub const ALL: &[(&str, &str)] = &[$(($name, $doc.trim_ascii())),*];
    };
}

codes! {
    /// The file is not valid HCL.
    SYNTAX = "mlops::parse::syntax";
    /// A file or directory could not be read.
    IO = "mlops::parse::io";
    /// The directory holds no `*.mlops.hcl` file.
    NO_FILES = "mlops::parse::no_files";
    /// A block kind the language does not have.
    UNKNOWN_BLOCK = "mlops::schema::unknown_block";
    /// An attribute the block does not have.
    UNKNOWN_ATTRIBUTE = "mlops::schema::unknown_attribute";
    /// A required attribute or block is missing.
    MISSING_ATTRIBUTE = "mlops::schema::missing_attribute";
    /// An attribute or block is given twice.
    DUPLICATE_ATTRIBUTE = "mlops::schema::duplicate_attribute";
    /// A block has the wrong number of labels.
    LABELS = "mlops::schema::labels";
    /// A value has the wrong type.
    TYPE_MISMATCH = "mlops::schema::type_mismatch";
    /// A value is not one of the allowed choices.
    INVALID_CHOICE = "mlops::schema::invalid_choice";
    /// Two blocks of the same kind have the same name.
    DUPLICATE_NAME = "mlops::schema::duplicate_name";
    /// A name is not a valid identifier.
    INVALID_NAME = "mlops::schema::invalid_name";
    /// Attributes that exclude each other are both set, or none of a required pair is.
    CONFLICT = "mlops::schema::conflict";
    /// A duration such as `"24h"` is malformed.
    INVALID_DURATION = "mlops::units::invalid_duration";
    /// A memory size such as `"8Gi"` is malformed.
    INVALID_MEMORY = "mlops::units::invalid_memory";
    /// A cron schedule is malformed.
    INVALID_CRON = "mlops::units::invalid_cron";
    /// A percentage is outside 0–100 or malformed.
    INVALID_PERCENTAGE = "mlops::units::invalid_percentage";
    /// A probability or fraction is outside its range.
    INVALID_PROBABILITY = "mlops::units::invalid_probability";
    /// A number is outside the range the attribute allows.
    OUT_OF_RANGE = "mlops::units::out_of_range";
    /// `var.x` names no variable.
    UNKNOWN_VARIABLE = "mlops::eval::unknown_variable";
    /// `local.x` names no local value.
    UNKNOWN_LOCAL = "mlops::eval::unknown_local";
    /// A root variable without a default was given no value.
    MISSING_VARIABLE = "mlops::eval::missing_variable";
    /// A variable's `validation` condition is false.
    VARIABLE_VALIDATION = "mlops::eval::variable_validation";
    /// A function the language does not have.
    UNKNOWN_FUNCTION = "mlops::eval::unknown_function";
    /// A function was called with bad arguments.
    FUNCTION_ERROR = "mlops::eval::function_error";
    /// An operator was applied to values it does not accept.
    INVALID_OPERATION = "mlops::eval::invalid_operation";
    /// An expression that the language does not support here.
    UNSUPPORTED_EXPRESSION = "mlops::eval::unsupported_expression";
    /// A name that is not in scope (`each`, `count`, a `for` variable, a root name).
    UNKNOWN_NAME = "mlops::eval::unknown_name";
    /// Local values or module outputs that depend on each other.
    EVAL_CYCLE = "mlops::eval::cycle";
    /// An index or key that the value does not have.
    INVALID_INDEX = "mlops::eval::invalid_index";
    /// `count` / `for_each` misused.
    INVALID_REPETITION = "mlops::eval::invalid_repetition";
    /// A module's `source` directory cannot be loaded.
    MODULE_NOT_FOUND = "mlops::module::not_found";
    /// An input the module does not declare as a variable.
    MODULE_UNKNOWN_INPUT = "mlops::module::unknown_input";
    /// An output the module does not declare.
    MODULE_UNKNOWN_OUTPUT = "mlops::module::unknown_output";
    /// Modules that instantiate each other.
    MODULE_RECURSION = "mlops::module::recursion";
    /// A reference to a resource that does not exist.
    UNKNOWN_REFERENCE = "mlops::check::unknown_reference";
    /// A reference to a resource of the wrong kind.
    WRONG_KIND = "mlops::check::wrong_kind";
    /// An attribute path into a resource that it does not export.
    UNKNOWN_ATTRIBUTE_REFERENCE = "mlops::check::unknown_attribute_reference";
    /// A column that the source's schema does not declare.
    UNKNOWN_COLUMN = "mlops::check::unknown_column";
    /// A feature that none of the job's or monitor's views define.
    UNKNOWN_FEATURE = "mlops::check::unknown_feature";
    /// An entity join key that the view's source does not have.
    JOIN_KEY_MISSING = "mlops::check::join_key_missing";
    /// An aggregate that does not fit the column's type.
    AGGREGATE_TYPE = "mlops::check::aggregate_type";
    /// The label is also used as a feature (target leakage).
    LABEL_LEAKAGE = "mlops::ml::label_leakage";
    /// A feature window longer than the view's ttl.
    WINDOW_EXCEEDS_TTL = "mlops::ml::window_exceeds_ttl";
    /// A drift threshold outside the range its method can produce.
    DRIFT_THRESHOLD = "mlops::ml::drift_threshold";
    /// A drift method that does not fit the feature's type.
    DRIFT_METHOD = "mlops::ml::drift_method";
    /// A metric that does not fit the objective (auc on a regression).
    METRIC_OBJECTIVE = "mlops::ml::metric_objective";
    /// The label's type does not fit the objective.
    LABEL_OBJECTIVE = "mlops::ml::label_objective";
    /// An XGBoost parameter that is unknown or out of range.
    INVALID_PARAM = "mlops::ml::invalid_param";
    /// Canary steps that do not increase or do not end at 100.
    CANARY_STEPS = "mlops::ml::canary_steps";
    /// A retrain policy that can promote a model with no gate.
    PROMOTE_WITHOUT_GATE = "mlops::ml::promote_without_gate";
    /// A retrain cooldown shorter than the window of a monitor that triggers it.
    COOLDOWN_SHORTER_THAN_WINDOW = "mlops::ml::cooldown_shorter_than_window";
    /// A gate bound that points the wrong way for its metric (`min` on an error metric).
    GATE_DIRECTION = "mlops::ml::gate_direction";
    /// A time-based split on a source without a timestamp column.
    TIME_SPLIT_WITHOUT_TIMESTAMP = "mlops::ml::time_split_without_timestamp";
    /// Autoscaling bounds that do not fit together.
    AUTOSCALING = "mlops::ml::autoscaling";
    /// A rollback rule's `query` or `url` that is missing, misplaced or cannot be read.
    ROLLBACK_QUERY = "mlops::ml::rollback_query";
    /// A retrain policy with no trigger.
    NO_TRIGGER = "mlops::ml::no_trigger";
    /// A promotion that goes through an endpoint serving another job's model.
    PROMOTE_ENDPOINT_MISMATCH = "mlops::ml::promote_endpoint_mismatch";
    /// Warning: a PSI threshold so low for the window's sample size that unchanged data alerts.
    PSI_THRESHOLD_LOW = "mlops::lint::psi_threshold_low";
    /// Warning: an endpoint that no monitor watches.
    UNMONITORED_ENDPOINT = "mlops::lint::unmonitored_endpoint";
    /// Warning: a canary rollout with no rollback rule.
    NO_ROLLBACK = "mlops::lint::no_rollback";
    /// Warning: a secret-looking value written in plain text.
    PLAINTEXT_SECRET = "mlops::lint::plaintext_secret";
    /// Warning: a variable that nothing uses.
    UNUSED_VARIABLE = "mlops::lint::unused_variable";
    /// The dependency graph has a cycle.
    CYCLE = "mlops::graph::cycle";
    /// A name that cannot become a Kubernetes object name or namespace.
    KUBERNETES_NAME = "mlops::kubernetes::invalid_name";
    /// Two resources that would become the same Kubernetes object.
    KUBERNETES_NAME_COLLISION = "mlops::kubernetes::name_collision";
    /// The kubernetes target has no usable runtime image.
    KUBERNETES_IMAGE = "mlops::kubernetes::missing_image";
    /// A setting the kubernetes target does not support yet.
    KUBERNETES_UNSUPPORTED = "mlops::kubernetes::unsupported";
    /// An `object_store` that is not an `s3://BUCKET[/PREFIX]` URL.
    KUBERNETES_OBJECT_STORE = "mlops::kubernetes::invalid_object_store";
}
