"""Entra's 17 policy rules as the portal's role settings."""

from datetime import timedelta

from entra.policies import policy_settings
from entra.tests.conftest import entra_default_rules
from roles import notification_matrix


def test_an_untouched_entra_policy_maps_to_entras_defaults():
    policy = policy_settings(entra_default_rules())
    assert policy.changes == {
        "activation_max_duration": timedelta(hours=8),
        "require_mfa": True,
        "activation_authentication_strength": "any_mfa",
        "require_justification": True,
        "require_ticket": False,
        "require_approval": False,
        "approval_timeout": timedelta(days=1),
        "eligible_allow_permanent": True,
        "eligible_max_duration": timedelta(days=365),
        "active_allow_permanent": True,
        "active_max_duration": timedelta(days=180),
        "active_require_mfa": False,
        "active_require_justification": True,
        **{rule.default_field: True for rule in notification_matrix.RULES},
        **{rule.additional_field: "" for rule in notification_matrix.RULES},
        **{rule.critical_field: False for rule in notification_matrix.RULES},
    }
    assert policy.problems == [] and not policy.approver_ids and not policy.approver_group_ids


def test_approvers_users_and_groups_and_a_conditional_access_context():
    policy = policy_settings(
        entra_default_rules(
            AuthenticationContext_EndUser_Assignment={"isEnabled": True, "claimValue": "c1"},
            Enablement_EndUser_Assignment={"enabledRules": ["Justification"]},
            Enablement_Admin_Assignment={"enabledRules": ["MultiFactorAuthentication"]},
            Approval_EndUser_Assignment={
                "setting": {
                    "isApprovalRequired": True,
                    "approvalStages": [
                        {
                            "approvalStageTimeOutInDays": 30,
                            "primaryApprovers": [
                                {"@odata.type": "#microsoft.graph.singleUser", "userId": "u1"},
                                {"@odata.type": "#microsoft.graph.groupMembers", "groupId": "g1"},
                            ],
                        }
                    ],
                }
            },
        )
    )
    assert policy.changes["require_mfa"]  # the portal's own MFA stands in for the auth context
    assert policy.changes["activation_authentication_strength"] == "phishing_resistant"
    assert policy.changes["require_approval"] and policy.changes["approval_timeout"] == timedelta(days=14)
    assert policy.changes["active_require_mfa"] and not policy.changes["active_require_justification"]
    assert (policy.approver_ids, policy.approver_group_ids) == ({"u1"}, {"g1"})


def test_values_the_portal_cannot_hold_are_reported_and_left_alone():
    policy = policy_settings(
        entra_default_rules(
            Expiration_EndUser_Assignment={"maximumDuration": "PT10M"},
            Expiration_Admin_Assignment={"maximumDuration": "P1Y"},
        )
    )
    assert "activation_max_duration" not in policy.changes
    assert "active_max_duration" not in policy.changes
    assert policy.changes["active_allow_permanent"] is True
    assert len(policy.problems) == 2 and "PT10M" in policy.problems[0] and "P1Y" in policy.problems[1]


def test_each_of_the_nine_notification_rules_maps_onto_its_place_in_the_matrix():
    policy = policy_settings(
        entra_default_rules(
            Notification_Admin_Admin_Eligibility={"notificationRecipients": ["b@x.example", " A@x.example"]},
            Notification_Approver_EndUser_Assignment={"notificationRecipients": ["a@x.example"]},
            Notification_Requestor_Admin_Assignment={"isDefaultRecipientsEnabled": False},
            Notification_Admin_EndUser_Assignment={"notificationLevel": "Critical"},
            Notification_Requestor_EndUser_Assignment={
                "notificationLevel": "None",
                "notificationRecipients": ["c@x.example"],
            },
        )
    )
    changes = policy.changes
    assert changes["notify_eligible_admin_additional"] == "b@x.example\na@x.example"
    assert changes["notify_activation_approver_additional"] == "a@x.example"
    assert changes["notify_active_assignee_default"] is False
    assert changes["notify_activation_admin_critical_only"] is True
    assert changes["notify_activation_admin_default"] is True
    # Level None: Entra sends nothing for the rule.
    assert (
        changes["notify_activation_assignee_default"],
        changes["notify_activation_assignee_additional"],
    ) == (
        False,
        "",
    )
    untouched = [rule for rule in notification_matrix.RULES if rule.prefix == "notify_eligible_approver"]
    assert [changes[untouched[0].default_field], changes[untouched[0].critical_field]] == [True, False]


def test_a_policy_without_rules_changes_nothing():
    assert policy_settings([]).changes == {}
