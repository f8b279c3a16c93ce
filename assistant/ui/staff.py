"""The staff app (``/staff``, behind a login): the Agent desk, the Segments dashboard,
Insights and the Prompt studio. Gradio's login admits any known staff user; every action
then checks the role it needs on the server (``service.require_role``), so a wrong role gets
a clear refusal, through the browser and through ``gradio_client`` alike."""

from __future__ import annotations

import gradio as gr

from assistant.infra.users import has_role
from assistant.service.assistant import AssistantService
from assistant.ui.desk import build_desk_tab
from assistant.ui.guard import guarded
from assistant.ui.insights import build_insights_tab
from assistant.ui.segments import build_segments_tab
from assistant.ui.studio import build_studio_tab

# tab -> (role it needs, how the refusal names it); the order of the tabs' outputs
ROLE_TABS = {"desk": ("agent", "the Agent desk needs"), "segments": ("ops", "Segments need"),
             "insights": ("ops", "Insights need"),
             "studio": ("ops", "the Prompt studio needs")}


def signed_in_banner(name: str, role: str) -> str:
    return (f"Signed in as **{name}** ({role}). [Sign out](/staff/logout) · "
            "[Customer chat](/)")


def refusal(name: str, role: str, needs: str, what: str) -> str:
    return (f"### Not available to your account\n'{name}' has the role **{role}**; "
            f"{what} the **{needs}** role. Ask an admin to run "
            f"`assistant users add NAME --role {needs}`, or sign in with another account.")


def create_staff_app(service: AssistantService) -> gr.Blocks:
    @guarded
    def who(request: gr.Request):
        """On load: who is signed in, and which tabs they may use."""
        user = service.users.get(request.username or "")
        if user is None:  # removed while signed in
            return ("Your account no longer exists. [Sign out](/staff/logout)",
                    *(gr.update(visible=False) for _ in range(2 * len(ROLE_TABS))))
        updates = []
        for role, what in ROLE_TABS.values():
            allowed = has_role(user, role)
            text = "" if allowed else refusal(user.name, user.role, role, what)
            updates += [gr.update(visible=allowed), gr.update(visible=not allowed, value=text)]
        return (signed_in_banner(user.name, user.role), *updates)

    with gr.Blocks(title="Tailor · staff") as demo:
        gr.Markdown(f"## {service.settings.shop_name} · Tailor staff")
        banner = gr.Markdown("Signing in…", elem_id="tailor-staff-banner")
        with gr.Tabs():
            with gr.Tab("Agent desk", id="desk"):
                desk_refusal = gr.Markdown(visible=False, elem_id="tailor-desk-refusal")
                with gr.Column(visible=False) as desk_body:
                    build_desk_tab(service)
            with gr.Tab("Segments", id="segments"):
                seg_refusal = gr.Markdown(visible=False, elem_id="tailor-segments-refusal")
                with gr.Column(visible=False) as seg_body:
                    seg_load, seg_inputs, seg_outputs = build_segments_tab(service)
            with gr.Tab("Insights", id="insights", elem_id="tailor-insights") as ins_tab:
                ins_refusal = gr.Markdown(visible=False, elem_id="tailor-insights-refusal")
                with gr.Column(visible=False) as ins_body:
                    ins_load, ins_inputs, ins_outputs = build_insights_tab(service)
            with gr.Tab("Prompt studio", id="studio"):
                studio_refusal = gr.Markdown(visible=False, elem_id="tailor-studio-refusal")
                with gr.Column(visible=False) as studio_body:
                    studio_load, studio_inputs, studio_outputs = build_studio_tab(service)
        demo.load(who, None, [banner, desk_body, desk_refusal, seg_body, seg_refusal,
                              ins_body, ins_refusal, studio_body, studio_refusal],
                  api_name="whoami", api_visibility="undocumented", queue=False)
        demo.load(seg_load, seg_inputs, seg_outputs, api_name="segments_load",
                  api_visibility="undocumented")
        demo.load(ins_load, ins_inputs, ins_outputs, api_name="insights_page_load",
                  api_visibility="undocumented")
        # measured again when opened: segments may have been rebuilt since the page loaded
        ins_tab.select(ins_load, ins_inputs, ins_outputs, api_visibility="undocumented")
        demo.load(studio_load, studio_inputs, studio_outputs,
                  api_name="studio_load", api_visibility="undocumented")
    return demo
